"""Reading what `gw algo push` / `gw data push` is given: a directory or a zip file.

Everything is validated before anything is written: absolute paths, ``..`` components,
links that leave the tree and special files are refused with the offending path named.
"""

from __future__ import annotations

import os
import posixpath
import stat
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from hpc_gateway.gateway.errors import InvalidInput


@dataclass(frozen=True)
class SourceEntry:
    """One entry of a source tree; ``kind`` is "file", "dir" or "symlink"."""

    path: str            # relative, '/'-separated, normalised
    kind: str
    executable: bool = False
    link_target: str = ""
    size: int = 0
    origin: str = ""     # the filesystem path, or the zip member name


def _check_relative(path: str, source: str) -> str:
    normalised = posixpath.normpath(path)
    if path.startswith("/") or (len(path) > 1 and path[1] == ":"):
        raise InvalidInput(f"{source}: absolute path {path!r} is not allowed")
    if normalised == ".." or normalised.startswith("../") or "/../" in f"/{path}/":
        raise InvalidInput(f"{source}: path {path!r} leaves the tree ('..')")
    return normalised


def _check_link(path: str, target: str, source: str) -> None:
    if target.startswith("/"):
        raise InvalidInput(f"{source}: symlink {path!r} points to absolute path {target!r}")
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(path), target))
    if resolved == ".." or resolved.startswith("../"):
        raise InvalidInput(f"{source}: symlink {path!r} points outside the tree ({target!r})")


def scan_directory(root: Path) -> list[SourceEntry]:
    """Validate and list a directory tree (links are not followed)."""
    entries: list[SourceEntry] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames) + sorted(filenames):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            info = os.lstat(full)
            if stat.S_ISLNK(info.st_mode):
                target = os.readlink(full)
                _check_link(rel, target, str(root))
                entries.append(SourceEntry(rel, "symlink", link_target=target, origin=full))
            elif stat.S_ISDIR(info.st_mode):
                entries.append(SourceEntry(rel, "dir", origin=full))
            elif stat.S_ISREG(info.st_mode):
                entries.append(SourceEntry(rel, "file", bool(info.st_mode & stat.S_IXUSR),
                                           size=info.st_size, origin=full))
            else:
                raise InvalidInput(f"{root}: {rel!r} is not a regular file, directory or link")
    return entries


def scan_zip(path: Path) -> list[SourceEntry]:
    """Validate and list a zip file; a single top-level directory is stripped."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise InvalidInput(f"{path}: not a readable zip file ({exc})") from exc
    raw: list[tuple[str, zipfile.ZipInfo]] = []
    for info in infos:
        name = info.filename.replace("\\", "/")
        normalised = _check_relative(name, str(path))
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise InvalidInput(f"{path}: {name!r} is a symlink; zip sources may not hold links")
        raw.append((normalised, info))
    prefix = _common_top_dir(raw)
    entries, seen = [], set()
    for name, info in raw:
        rel = name[len(prefix):] if name.startswith(prefix) else ""
        if not rel or rel == ".":
            continue
        if rel in seen:
            raise InvalidInput(f"{path}: {rel!r} appears twice")
        seen.add(rel)
        mode = info.external_attr >> 16
        if info.is_dir():
            entries.append(SourceEntry(rel, "dir", origin=info.filename))
        else:
            entries.append(SourceEntry(rel, "file", bool(mode & stat.S_IXUSR),
                                       size=info.file_size, origin=info.filename))
    return entries


def _common_top_dir(raw: list[tuple[str, zipfile.ZipInfo]]) -> str:
    """The single top-level directory every member lies in ("" when there is none)."""
    tops = {name.split("/", 1)[0] for name, _ in raw}
    if len(tops) != 1 or not any("/" in name for name, _ in raw):
        return ""
    top = tops.pop()
    if any(name == top and not info.is_dir() for name, info in raw):
        return ""
    return top + "/"


@contextmanager
def open_source(source: Path) -> Iterator[tuple[list[SourceEntry], SourceReader]]:
    """Scan ``source`` (directory or zip) and give its entries and a reader for file data."""
    if source.is_dir():
        yield scan_directory(source), SourceReader(None)
    elif source.is_file() and zipfile.is_zipfile(source):
        entries = scan_zip(source)
        with zipfile.ZipFile(source) as archive:
            yield entries, SourceReader(archive)
    elif source.exists():
        raise InvalidInput(f"{source}: expected a directory or a .zip file")
    else:
        raise InvalidInput(f"{source}: no such file or directory")


class SourceReader:
    """Opens the data of a file entry, from disk or from the zip."""

    def __init__(self, archive: zipfile.ZipFile | None) -> None:
        self.archive = archive

    def open(self, entry: SourceEntry) -> BinaryIO:
        """A binary stream of ``entry``'s content."""
        if self.archive is None:
            return open(entry.origin, "rb")
        return self.archive.open(entry.origin)  # type: ignore[return-value]
