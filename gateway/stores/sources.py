"""Reading what `gw algo push` / `gw data push` is given: a directory or a zip file.

Everything is validated before anything is written, as if an attacker wrote it: absolute
paths, ``..`` components, links whose chain leads outside the tree, special files, a path
that is both a file and a directory, members larger than the configured limit and zip
bombs are refused with the offending path named. A zip is stored as it is laid out: a zip
whose members share one top folder keeps it (the seed's ``detectron2.zip`` is used as
``/code/detectron2/tools/train_net.py``).
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
from typing import IO, BinaryIO, Self

from gateway.common.errors import InvalidInput


@dataclass(frozen=True)
class UploadLimits:
    """How much one push may store (``gw config``: max_upload_bytes, max_zip_ratio)."""

    max_bytes: int = 1 << 40
    max_zip_ratio: float = 200.0


@dataclass(frozen=True)
class SourceEntry:
    """One entry of a source tree; ``kind`` is "file", "dir" or "symlink"."""

    path: str            # relative, '/'-separated, normalised
    kind: str
    executable: bool = False
    link_target: str = ""
    size: int = 0
    origin: str = ""     # the filesystem path, or the zip member name


SETID = stat.S_ISUID | stat.S_ISGID


def _check_utf8(text: str, source: str, what: str) -> None:
    """Refuse a name (or link target) that is not valid UTF-8: nothing downstream (the
    database, JSON, a script) could carry it faithfully."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{source}: {what} {text!r} is not valid UTF-8: rename it") from None


def _check_setid(mode: int, source: str, rel: str) -> None:
    if mode & SETID:
        raise InvalidInput(f"{source}: {rel!r} has the setuid or setgid bit, which code and "
                           f"data may not carry (chmod ug-s it)")


def _check_relative(path: str, source: str) -> str:
    _check_utf8(path, source, "name")
    normalised = posixpath.normpath(path)
    if path.startswith("/") or (len(path) > 1 and path[1] == ":"):
        raise InvalidInput(f"{source}: absolute path {path!r} is not allowed")
    if normalised == ".." or normalised.startswith("../") or "/../" in f"/{path}/":
        raise InvalidInput(f"{source}: path {path!r} leaves the tree ('..')")
    return normalised


def _check_link(root: Path, full: str, rel: str, target: str) -> None:
    """A link may point only inside the tree, however many links its chain passes."""
    if target.startswith("/"):
        raise InvalidInput(f"{root}: symlink {rel!r} points to absolute path {target!r}")
    lexical = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
    if lexical == ".." or lexical.startswith("../"):
        raise InvalidInput(f"{root}: symlink {rel!r} points outside the tree ({target!r})")
    real_root = os.path.realpath(root)
    resolved = os.path.realpath(full)
    if resolved != real_root and not resolved.startswith(real_root + os.sep):
        raise InvalidInput(f"{root}: symlink {rel!r} leads outside the tree (through "
                           f"{target!r} to {resolved})")


def _check_conflicts(paths: list[tuple[str, str]], source: str) -> None:
    """No path twice, and no file that is also a directory of another entry."""
    kinds: dict[str, str] = {}
    for path, kind in paths:
        if path in kinds:
            raise InvalidInput(f"{source}: {path!r} appears twice")
        kinds[path] = kind
    for path, _kind in paths:
        parent = posixpath.dirname(path)
        while parent:
            if kinds.get(parent, "dir") != "dir":
                raise InvalidInput(f"{source}: {parent!r} is a {kinds[parent]} and also a "
                                   f"folder holding {path!r}")
            parent = posixpath.dirname(parent)


def scan_directory(root: Path, limits: UploadLimits = UploadLimits(),
                   exclude: frozenset[str] = frozenset()) -> list[SourceEntry]:
    """Validate and list a directory tree (links are not followed); folders and files
    named in ``exclude`` are left out wherever they are."""
    def unreadable(exc: OSError) -> None:
        raise InvalidInput(f"{root}: cannot read {exc.filename}: {exc.strerror}") from exc

    entries: list[SourceEntry] = []
    total = 0
    for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable):
        dirnames[:] = sorted(d for d in dirnames if d not in exclude)
        for name in dirnames + sorted(f for f in filenames if f not in exclude):
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            _check_utf8(rel, str(root), "name")
            info = os.lstat(full)
            if stat.S_ISLNK(info.st_mode):
                target = os.readlink(full)
                _check_utf8(target, str(root), f"the target of {rel!r},")
                _check_link(root, full, rel, target)
                entries.append(SourceEntry(rel, "symlink", link_target=target, origin=full))
            elif stat.S_ISDIR(info.st_mode):
                entries.append(SourceEntry(rel, "dir", origin=full))
            elif stat.S_ISREG(info.st_mode):
                if not os.access(full, os.R_OK):
                    raise InvalidInput(f"{root}: cannot read {rel!r}: permission denied")
                _check_setid(info.st_mode, str(root), rel)
                total += info.st_size
                _check_total(total, limits, root, rel)
                entries.append(SourceEntry(rel, "file", bool(info.st_mode & stat.S_IXUSR),
                                           size=info.st_size, origin=full))
            else:
                raise InvalidInput(f"{root}: {rel!r} is not a regular file, directory or link")
    return entries


def _check_total(total: int, limits: UploadLimits, source: Path, member: str) -> None:
    if total > limits.max_bytes:
        raise InvalidInput(f"{source}: larger than the upload limit of {limits.max_bytes} "
                           f"bytes (at {member!r}; see max_upload_bytes in `gw config`)")


def scan_zip(path: Path, limits: UploadLimits = UploadLimits()) -> list[SourceEntry]:
    """Validate and list a zip file, as it is laid out (a top folder is kept)."""
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except UnicodeDecodeError as exc:  # flagged UTF-8, and it is not
        raise InvalidInput(f"{path}: member name {bytes(exc.object)!r} is not valid UTF-8"
                           ) from exc
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise InvalidInput(f"{path}: not a readable zip file ({exc})") from exc
    entries: list[SourceEntry] = []
    total = packed = 0
    for info in infos:
        name = info.filename.replace("\\", "/")
        rel = _check_relative(name, str(path))
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise InvalidInput(f"{path}: {name!r} is a symlink; zip sources may not hold links")
        if rel in ("", "."):
            continue
        if info.is_dir():
            entries.append(SourceEntry(rel, "dir", origin=info.filename))
            continue
        _check_setid(mode, str(path), rel)
        total += info.file_size
        packed += info.compress_size
        _check_total(total, limits, path, rel)
        entries.append(SourceEntry(rel, "file", bool(mode & stat.S_IXUSR),
                                   size=info.file_size, origin=info.filename))
    _check_conflicts([(e.path, e.kind) for e in entries], str(path))
    if total > limits.max_zip_ratio * max(packed, 1) and total > 1 << 20:
        raise InvalidInput(f"{path}: expands {total / max(packed, 1):.0f} times (to {total} "
                           f"bytes): refused as a zip bomb (see max_zip_ratio in `gw config`)")
    return entries


@contextmanager
def open_source(source: Path, limits: UploadLimits = UploadLimits(),
                exclude: frozenset[str] = frozenset()
                ) -> Iterator[tuple[list[SourceEntry], SourceReader]]:
    """Scan ``source`` (directory or zip) and give its entries and a reader for file data."""
    if source.is_dir():
        yield scan_directory(source, limits, exclude), SourceReader(None)
    elif source.is_file() and zipfile.is_zipfile(source):
        entries = scan_zip(source, limits)
        with zipfile.ZipFile(source) as archive:
            yield entries, SourceReader(archive)
    elif source.exists():
        raise InvalidInput(f"{source}: expected a directory or a .zip file")
    else:
        raise InvalidInput(f"{source}: no such file or directory")


class SourceReader:
    """Opens the data of a file entry, from disk or from the zip; a stream never yields
    more than the entry's declared size (a zip header may lie)."""

    def __init__(self, archive: zipfile.ZipFile | None) -> None:
        self.archive = archive

    def open(self, entry: SourceEntry) -> BinaryIO:
        """A binary stream of ``entry``'s content."""
        if self.archive is None:
            try:
                return open(entry.origin, "rb")
            except OSError as exc:
                raise InvalidInput(f"cannot read {entry.origin}: {exc.strerror}") from exc
        return BoundedReader(self.archive.open(entry.origin), entry)  # type: ignore[return-value]


class BoundedReader:
    """A zip member's stream that fails once it yields more than the declared size."""

    def __init__(self, stream: IO[bytes], entry: SourceEntry) -> None:
        self.stream = stream
        self.entry = entry
        self.seen = 0

    def read(self, size: int = -1) -> bytes:
        """Read like the underlying stream, counting."""
        chunk = self.stream.read(size)
        self.seen += len(chunk)
        if self.seen > self.entry.size:
            raise InvalidInput(f"zip member {self.entry.origin!r} holds more than the "
                               f"{self.entry.size} bytes its header declares")
        return chunk

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stream.close()
