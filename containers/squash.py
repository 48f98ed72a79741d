"""SquashFS writers that read a tar on stdin: the one place their command lines are built.

``tar2sqfs`` (squashfs-tools-ng, Debian's ``squashfs-tools-ng``) is the first choice;
``sqfstar`` where squashfs-tools is 4.6 or newer (4.5's is its first, least tried
release). Both get the compressor the rest of the project uses (gzip, level 6: what every
Apptainer reads) and one compressor thread per CPU this process may use (a Slurm job's
allocation).
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import IO

from gateway.common.errors import ContainerToolError
from gateway.common.process import feed_command, run_command

# gzip is what every Apptainer reads; level 6 packs a 320 MB rootfs ~3x faster than the
# default 9 for 0.3% more bytes (measured: docs/containers.md). mksquashfs gets it too.
GZIP_LEVEL = 6
TOOL_TIMEOUT = 6 * 3600
SQFSTAR_MIN = (4, 6)


def compressor_threads() -> int:
    """The CPUs this process may run on (in a Slurm job: its allocation)."""
    return max(1, len(os.sched_getaffinity(0)))


@lru_cache(maxsize=1)
def _sqfstar_version() -> tuple[int, ...]:
    if not shutil.which("sqfstar"):
        return ()
    out = run_command(["sqfstar", "-version"], timeout=30, check=False).stdout
    match = re.search(r"version (\d+)\.(\d+)", out)
    return (int(match.group(1)), int(match.group(2))) if match else ()


def tar_writer() -> str | None:
    """``tar2sqfs``, ``sqfstar`` or None: which writer of SquashFS from a tar is here."""
    if shutil.which("tar2sqfs"):
        return "tar2sqfs"
    if _sqfstar_version() >= SQFSTAR_MIN:
        return "sqfstar"
    return None


def tar_writer_argv(writer: str, dest: Path, threads: int | None = None) -> list[str]:
    """The command line that makes the SquashFS ``dest`` from the tar on its stdin."""
    jobs = str(threads or compressor_threads())
    if writer == "tar2sqfs":
        # -s: an entry it cannot store is an error, never silently left out
        return ["tar2sqfs", "--quiet", "--no-skip", "--num-jobs", jobs, "--compressor", "gzip",
                "--comp-extra", f"level={GZIP_LEVEL}", str(dest)]
    if writer == "sqfstar":
        # sqfstar skips a tar's "./" entry and makes the root 0777 and the caller's
        # unless told; tar2sqfs gives it 0755 root:root (or the "./" entry's).
        return ["sqfstar", "-quiet", "-no-progress", "-processors", jobs, "-comp", "gzip",
                "-Xcompression-level", str(GZIP_LEVEL), "-root-mode", "0755", "-root-uid",
                "0", "-root-gid", "0", str(dest)]
    raise ValueError(f"unknown SquashFS tar writer {writer!r}")


SYNC_FILE_RANGE_WRITE = 2
WRITEBACK_EVERY = 0.25  # seconds


@lru_cache(maxsize=1)
def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        function = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]
    return function


@contextmanager
def early_writeback(path: Path) -> Iterator[None]:
    """While the block runs, start the disk writes of what a writer has put in ``path``
    so far (``sync_file_range``, asynchronous), every quarter second: the fsync that
    makes the finished file durable then waits for the last part only, not for the
    whole gigabytes the kernel would otherwise have held back."""
    start = _sync_file_range()
    stop = threading.Event()

    def push() -> None:
        fd = -1
        try:
            while not stop.wait(WRITEBACK_EVERY):
                if fd < 0:
                    try:
                        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                    except FileNotFoundError:
                        continue
                assert start is not None
                start(fd, 0, 0, SYNC_FILE_RANGE_WRITE)
        finally:
            if fd >= 0:
                os.close(fd)

    thread = threading.Thread(target=push, name="gw-writeback", daemon=True)
    if start is not None:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        if start is not None:
            thread.join()


def squash_tar(feed: Callable[[IO[bytes]], None], dest: Path, writer: str,
               threads: int | None = None) -> None:
    """Make the SquashFS ``dest`` from the tar ``feed`` writes; on failure ``dest`` is
    removed and the error carries the writer's command line and stderr. Its bytes go to
    disk as it is written (:func:`early_writeback`)."""
    try:
        with early_writeback(dest):
            feed_command(tar_writer_argv(writer, dest, threads), feed,
                         error_type=ContainerToolError, what=writer, timeout=TOOL_TIMEOUT)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
