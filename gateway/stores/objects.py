"""Content-addressed file objects: each distinct file content (and exec bit) stored once.

Versions are trees of hardlinks to these objects, so an unchanged file costs nothing in a
new version. Objects are read-only (0400/0500, private like everything in a home): a
hardlinked file edited in place would change every version that shares it.

Garbage collection removes objects no version links (link count 1). A push holds a shared
lock while it stores and links objects; collection takes the lock exclusively and skips
its turn when a push is under way, so it never takes an object a push is about to link.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import stat
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

CHUNK = 1 << 20


def hash_stream(stream: BinaryIO) -> str:
    """sha256 hex of everything left in ``stream``."""
    digest = hashlib.sha256()
    for chunk in iter(lambda: stream.read(CHUNK), b""):
        digest.update(chunk)
    return digest.hexdigest()


class ObjectStore:
    """Files named by content under ``root/<aa>/<sha256>[.x]``."""

    def __init__(self, root: Path, tmp: Path) -> None:
        self.root = root
        self.tmp = tmp
        self.created: list[Path] = []   # objects this instance installed

    @contextlib.contextmanager
    def storing(self) -> Iterator[None]:
        """Hold off garbage collection while objects are stored and linked."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        with open(self.root / ".gc.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def path_for(self, sha256: str, executable: bool) -> Path:
        """Where the object with this content and exec bit lives."""
        return self.root / sha256[:2] / (sha256 + (".x" if executable else ""))

    def add_file(self, source: Path) -> tuple[Path, str, int]:
        """Store the content of ``source``; returns (object path, sha256, size)."""
        info = source.stat()
        executable = bool(info.st_mode & stat.S_IXUSR)
        with source.open("rb") as stream:
            sha = hash_stream(stream)
        target = self.path_for(sha, executable)
        if not target.exists():
            self._install(target, lambda tmp: shutil.copyfile(source, tmp), executable)
        return target, sha, info.st_size

    def add_stream(self, stream: BinaryIO, executable: bool) -> tuple[Path, str, int]:
        """Store what ``stream`` yields (one pass: written to a temp file while hashed)."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        tmp = self.tmp / f"object-{uuid.uuid4().hex}"
        digest = hashlib.sha256()
        size = 0
        try:
            with tmp.open("wb") as out:
                for chunk in iter(lambda: stream.read(CHUNK), b""):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
            target = self.path_for(digest.hexdigest(), executable)
            if target.exists():
                tmp.unlink()
            else:
                self._install(target, lambda t: os.replace(tmp, t), executable)
        finally:
            tmp.unlink(missing_ok=True)
        return target, digest.hexdigest(), size

    def _install(self, target: Path, write: Callable[[Path], object],
                 executable: bool) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
        try:
            write(staging)
            os.chmod(staging, 0o500 if executable else 0o400)
            os.replace(staging, target)
            self.created.append(target)
        finally:
            staging.unlink(missing_ok=True)

    def collect_garbage(self, only: Iterable[Path] | None = None) -> int:
        """Remove objects that no version links any more (link count 1), all of them or
        ``only`` these; returns how many. Skipped (0) while a push is storing objects."""
        if not self.root.is_dir():
            return 0
        with open(self.root / ".gc.lock", "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0  # a push is under way: the next collection takes what is left
            try:
                candidates = only if only is not None else self._all_objects()
                return sum(1 for path in candidates if _unlink_if_unlinked(path))
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _all_objects(self) -> Iterator[Path]:
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                if not name.startswith("."):
                    yield Path(dirpath) / name


def _unlink_if_unlinked(path: Path) -> bool:
    try:
        if os.lstat(path).st_nlink == 1:
            os.unlink(path)
            return True
    except FileNotFoundError:
        pass
    return False
