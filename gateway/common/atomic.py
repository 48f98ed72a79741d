"""The one atomic write (a temporary file beside the target, fsync, rename, directory
fsync) and the one check of a path a command is to write.

A reader (another command, the watcher, a portal, another login node over NFS) sees the
old file or the new one, never a part; a failure leaves no temporary file behind.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from gateway.common.errors import InvalidInput


def check_output_path(out: Path, what: str = "file") -> None:
    """``out`` can be written as a new file: not a directory, in a directory that exists
    and that this user may write (checked before any work, so a refusal costs nothing)."""
    if out.is_dir():
        raise InvalidInput(f"{out} is a directory: name the {what} to write")
    if not out.parent.is_dir():
        raise InvalidInput(f"{out.parent} does not exist: create it first")
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise InvalidInput(f"cannot write in {out.parent}: permission denied; choose another "
                           "place")


def fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (a no-op where directories cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def replacing(target: Path, mode: int | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``target`` to write; when the block ends well, the
    file is synced, given ``mode`` and renamed over ``target``. On any error it is removed
    and ``target`` is as it was."""
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.partial")
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
        fsync_directory(target.parent)
    finally:
        tmp.unlink(missing_ok=True)


def write_atomic(target: Path, data: str | bytes, mode: int | None = None) -> None:
    """Write ``data`` to ``target`` atomically (see :func:`replacing`)."""
    with replacing(target, mode) as tmp:
        if isinstance(data, str):
            tmp.write_text(data)
        else:
            tmp.write_bytes(data)
