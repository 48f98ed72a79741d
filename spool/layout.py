"""Spool files: how compute nodes tell the login node that a job ended.

A job writes ``<spool>/<job id>.json`` atomically (temp name, fsync, rename) from its EXIT
trap. The login-node side reads it, records it, and moves it to ``<spool>/done/``. Files
that cannot be read as a job's end state go to ``<spool>/bad/``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REQUIRED_FIELDS = ("job_id", "exit_code")


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


def read_spool_file(path: Path) -> dict[str, Any] | None:
    """The record in ``path``, or None when it is not a valid end state."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not all(k in record for k in REQUIRED_FIELDS):
        return None
    if not isinstance(record["job_id"], int) or not isinstance(record["exit_code"], int):
        return None
    return record


def write_spool_file(spool_dir: Path, record: dict[str, Any]) -> Path:
    """Write a record atomically, as the job script does."""
    target = spool_file(spool_dir, record["job_id"])
    tmp = spool_dir / f".{target.name}.{os.getpid()}"
    with tmp.open("w") as out:
        json.dump(record, out)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, target)
    return target


def set_aside(path: Path, folder: str) -> None:
    """Move a handled spool file to ``done/`` or ``bad/`` beside it."""
    dest_dir = path.parent / folder
    dest_dir.mkdir(exist_ok=True)
    os.replace(path, dest_dir / path.name)


@contextlib.contextmanager
def spool_lock(spool_dir: Path) -> Iterator[None]:
    """Serialise ingestion on this host (two `gw` commands at once take turns)."""
    spool_dir.mkdir(parents=True, exist_ok=True)
    with open(spool_dir / ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
