"""Operations on directory trees: read-only marking, removal, writable copies, sizes."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path


def make_read_only(root: Path) -> None:
    """Drop write permission on every file and directory below ``root`` (links untouched)."""
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            path = os.path.join(dirpath, name)
            mode = os.lstat(path).st_mode
            if not stat.S_ISLNK(mode):
                os.chmod(path, stat.S_IMODE(mode) & ~0o222)
        os.chmod(dirpath, stat.S_IMODE(os.lstat(dirpath).st_mode) & ~0o222)


def remove_tree(root: Path) -> None:
    """Remove a tree even where it was made read-only (directories are made writable first)."""
    if not root.exists() and not root.is_symlink():
        return
    if root.is_symlink() or not root.is_dir():
        root.unlink()
        return
    for dirpath, _dirnames, _filenames in os.walk(root):
        os.chmod(dirpath, 0o700)
    shutil.rmtree(root)


def copy_writable(source: Path, dest: Path) -> None:
    """Copy a tree with real file copies (no hardlinks) that the owner may write."""
    def copy_file(src: str, dst: str) -> str:
        shutil.copyfile(src, dst, follow_symlinks=False)
        if not os.path.islink(dst):
            os.chmod(dst, stat.S_IMODE(os.stat(src).st_mode) | 0o200)
        return dst

    shutil.copytree(source, dest, symlinks=True, copy_function=copy_file)
    for dirpath, _dirnames, _filenames in os.walk(dest):
        os.chmod(dirpath, 0o700)


def unsafe_entries(root: Path) -> list[tuple[str, str]]:
    """Entries a stored tree may not hold, as (relative path, why): FIFOs, sockets, devices,
    and links that lead outside ``root`` (or nowhere) however many links they pass."""
    real_root = os.path.realpath(root)
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                target = os.path.realpath(path)
                if target != real_root and not target.startswith(real_root + os.sep):
                    found.append((rel, f"link to {os.readlink(path)} (outside)"))
                elif not os.path.exists(path):
                    found.append((rel, f"link to {os.readlink(path)} (missing)"))
            elif stat.S_ISFIFO(mode):
                found.append((rel, "FIFO"))
            elif stat.S_ISSOCK(mode):
                found.append((rel, "socket"))
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                found.append((rel, "device"))
    return found


def remove_unsafe_entries(root: Path) -> list[str]:
    """Delete what :func:`unsafe_entries` finds; returns ``path (why)`` for each."""
    removed = []
    for rel, why in unsafe_entries(root):
        os.unlink(root / rel)
        removed.append(f"{rel} ({why})")
    return removed


def tree_size(root: Path) -> tuple[int, int]:
    """(number of regular files, total bytes) below ``root``."""
    count = size = 0
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            info = os.lstat(os.path.join(dirpath, name))
            if stat.S_ISREG(info.st_mode):
                count += 1
                size += info.st_size
    return count, size


def list_files(root: Path) -> list[tuple[str, int]]:
    """Relative paths and sizes of the regular files and links below ``root``, sorted."""
    entries = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in filenames:
            path = os.path.join(dirpath, name)
            entries.append((os.path.relpath(path, root), os.lstat(path).st_size))
    return sorted(entries)
