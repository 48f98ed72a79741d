"""Finishing an unpacked image rootfs so that both runtimes can run it read-only.

bubblewrap (and Apptainer without overlay) cannot create a bind target inside a read-only
image, so the targets are made here: the job's ``/code /dataset /model``, the kernel
file systems, ``/etc`` files the runtimes bind over, and Apptainer's ``/.singularity.d``
metadata (env file from the image Env, runscript from Entrypoint/Cmd, labels).
Nothing is created through a symlink the image planted.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

from containers.archive import ImageArchiveError, image_config_summary
from containers.mounts import JOB_MOUNT_TARGETS
from gateway.common.quoting import shell_line, shell_word

MOUNT_POINTS = (*(t.lstrip("/") for t in JOB_MOUNT_TARGETS), "proc", "dev", "tmp", "sys", "etc",
                ".singularity.d/env", ".singularity.d/libs", ".singularity.d/bin",
                ".singularity.d/actions")
# Files the runtimes bind over: they must be regular files, not links, in the image.
BIND_FILES = ("etc/hosts", "etc/resolv.conf", "etc/passwd", "etc/group")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _safe_dir(root: Path, rel: str) -> Path:
    """Create ``root/rel`` as real directories, refusing symlinks and files on the way."""
    current = root
    for part in rel.split("/"):
        current = current / part
        where = f"/{current.relative_to(root)}"
        if current.is_symlink():
            raise ImageArchiveError(f"the image's {where} is a symlink; /{rel} cannot be "
                                    "created in it")
        if not current.exists():
            current.mkdir()
            os.chmod(current, 0o755)   # whatever the umask (gw's is 077)
        elif not current.is_dir():
            raise ImageArchiveError(f"the image's {where} is not a directory; /{rel} cannot "
                                    "be created in it")
    return current


def _write(root: Path, rel: str, text: str, mode: int) -> None:
    """Write ``root/rel``, replacing a file or symlink of the image (never following it)."""
    parent_rel, _sep, name = rel.rpartition("/")
    target = (_safe_dir(root, parent_rel) if parent_rel else root) / name
    if target.is_dir() and not target.is_symlink():
        raise ImageArchiveError(f"the image's /{rel} is a directory, not a file")
    if target.is_symlink() or target.exists():
        target.unlink()
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(target, mode)


def _ensure_regular_file(root: Path, rel: str) -> None:
    """Keep a regular file; replace a symlink or a missing file with an empty one."""
    target = root / rel
    if target.is_symlink() or not target.exists():
        _write(root, rel, "", 0o644)
    elif not target.is_file():
        raise ImageArchiveError(f"the image's /{rel} is not a regular file")


def env_script(env: dict[str, str]) -> str:
    """Apptainer's ``10-docker2singularity.sh``: one ``export`` per image variable."""
    exports = "".join(f"export {key}={shell_word(value)}\n" for key, value in env.items()
                      if ENV_NAME.fullmatch(key))
    return "#!/bin/sh\n" + exports


def runscript(entrypoint: list[str], cmd: list[str]) -> str:
    """Docker's semantics as a runscript: arguments replace Cmd, Entrypoint stays."""
    entry = shell_line(entrypoint)
    default = shell_line(entrypoint + cmd) or "/bin/sh"
    with_args = f'{entry} "$@"' if entry else '"$@"'
    return (f'#!/bin/sh\nif [ "$#" -gt 0 ]; then\n    exec {with_args}\nfi\n'
            f"exec {default}\n")


def drop_setid_bits(rootfs: Path) -> int:
    """Clear the setuid and setgid bits of everything in ``rootfs``; returns how many.

    Jobs run with no_new_privs on a nosuid mount, so the bits could do nothing; the SIF
    is built without them all the same (an image is somebody else's choice of files)."""
    cleared = 0
    for dirpath, dirnames, filenames in os.walk(rootfs):
        for name in (*dirnames, *filenames):
            path = os.path.join(dirpath, name)
            mode = os.lstat(path).st_mode
            if not stat.S_ISLNK(mode) and mode & (stat.S_ISUID | stat.S_ISGID):
                os.chmod(path, stat.S_IMODE(mode) & ~(stat.S_ISUID | stat.S_ISGID))
                cleared += 1
    return cleared


def prepare_rootfs(rootfs: Path, config: dict[str, Any]) -> None:
    """Add the mount points, bind-target files and Apptainer's metadata to ``rootfs``."""
    summary = image_config_summary(config)
    for rel in MOUNT_POINTS:
        _safe_dir(rootfs, rel)
    for rel in BIND_FILES:
        _ensure_regular_file(rootfs, rel)
    _write(rootfs, ".singularity.d/env/10-docker2singularity.sh", env_script(summary["env"]),
           0o755)
    _write(rootfs, ".singularity.d/runscript",
           runscript(summary["entrypoint"], summary["cmd"]), 0o755)
    labels = (config.get("config") or {}).get("Labels") or {}
    _write(rootfs, ".singularity.d/labels.json", json.dumps(labels, indent=1) + "\n", 0o644)
    singularity_link = rootfs / "singularity"
    if not singularity_link.exists() and not singularity_link.is_symlink():
        os.symlink(".singularity.d/runscript", singularity_link)
