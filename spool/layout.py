"""Spool files: how compute nodes tell the login node that a job ended.

A job writes ``<spool>/<job id>.json`` atomically (temp name, fsync, rename) from its EXIT
trap; the format is spool/format.py. The login-node side reads it, records it, and moves
it to ``<spool>/done/``; a file that may not change its job goes to ``<spool>/aside/``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


def spool_file(spool_dir: Path, job_id: int) -> Path:
    """Where job ``job_id`` writes its end state."""
    return spool_dir / f"{job_id}.json"


def pending_spool_files(spool_dir: Path) -> list[Path]:
    """Spool files not ingested yet (temp files, which start with '.', are skipped)."""
    try:
        with os.scandir(spool_dir) as entries:
            return sorted((Path(e.path) for e in entries
                           if e.name.endswith(".json") and not e.name.startswith(".")
                           and e.is_file()), key=lambda p: p.name)
    except FileNotFoundError:
        return []


def set_aside(path: Path, folder: str) -> None:
    """Move a handled spool file to ``done/`` or ``aside/`` beside it."""
    dest_dir = path.parent / folder
    dest_dir.mkdir(mode=0o700, exist_ok=True)
    os.replace(path, dest_dir / path.name)


@contextlib.contextmanager
def spool_lock(spool_dir: Path, wait: bool = True) -> Iterator[bool]:
    """Serialise ingestion (two `gw` commands, or a command and the watcher, take turns).
    Yields whether the lock is held: with ``wait`` False, False at once when someone else
    is ingesting."""
    spool_dir.mkdir(parents=True, exist_ok=True)
    with open(spool_dir / ".lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
