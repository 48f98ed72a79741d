"""Content-addressed file objects: each distinct file content (and exec bit) stored once.

Versions are trees of hardlinks to these objects, so an unchanged file costs nothing in a
new version. Objects are read-only (0444/0555): a hardlinked file edited in place would
change every version that shares it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import uuid
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

    def _install(self, target: Path, write, executable: bool) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.with_name(f".{target.name}.{uuid.uuid4().hex}")
        try:
            write(staging)
            os.chmod(staging, 0o555 if executable else 0o444)
            os.replace(staging, target)
        finally:
            staging.unlink(missing_ok=True)

    def collect_garbage(self) -> int:
        """Remove objects that no version links any more (link count 1); returns how many."""
        removed = 0
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                path = os.path.join(dirpath, name)
                try:
                    if os.lstat(path).st_nlink == 1:
                        os.unlink(path)
                        removed += 1
                except FileNotFoundError:
                    continue
        return removed
