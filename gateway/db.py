"""The gateway database: SQLite through the standard library's sqlite3.

Why not SQLAlchemy: measured on the login node, ``import sqlalchemy`` alone takes 0.64 s
while ``squeue`` answers in 0.01 s and ``import sqlite3`` takes 0.04 s. Commands people type
all day (``gw job list``) must start fast, so the schema is plain SQL kept here, migrated
with ``PRAGMA user_version``. Only the login-node side writes it; compute nodes write spool
files (SQLite on NFS corrupts).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE images (
    id INTEGER PRIMARY KEY,
    digest TEXT NOT NULL UNIQUE,          -- sha256:<hex> of the image config (the image ID)
    sif_path TEXT NOT NULL,
    partition_offset INTEGER NOT NULL,
    size_bytes INTEGER NOT NULL,
    config_json TEXT NOT NULL,            -- env, workdir, cmd, entrypoint, architecture
    source TEXT NOT NULL,                 -- the tarball or registry reference it came from
    created REAL NOT NULL
);
CREATE TABLE image_tags (
    name TEXT PRIMARY KEY,                -- repo:tag
    image_id INTEGER NOT NULL REFERENCES images(id),
    created REAL NOT NULL
);
CREATE TABLE collections (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('algo', 'data', 'model')),
    name TEXT NOT NULL,
    created REAL NOT NULL,
    UNIQUE (kind, name)
);
CREATE TABLE versions (
    id INTEGER PRIMARY KEY,
    collection_id INTEGER NOT NULL REFERENCES collections(id),
    number INTEGER NOT NULL,
    path TEXT NOT NULL,
    file_count INTEGER NOT NULL,
    size_bytes INTEGER NOT NULL,
    tree_digest TEXT,
    meta_json TEXT NOT NULL DEFAULT '{}', -- description, framework, ... (lineage for models)
    job_id INTEGER,                       -- for models: the job that produced it
    created REAL NOT NULL,
    UNIQUE (collection_id, number)
);
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    slurm_job_id TEXT,
    state TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    exit_code INTEGER,
    node TEXT NOT NULL DEFAULT '',
    submitted REAL NOT NULL,
    started REAL,
    ended REAL,
    algo_version_id INTEGER REFERENCES versions(id),
    data_version_id INTEGER REFERENCES versions(id),
    image_id INTEGER REFERENCES images(id),
    model_name TEXT NOT NULL,
    model_version_id INTEGER REFERENCES versions(id),
    spec_json TEXT NOT NULL,              -- command, env, resources, runtime, versions by name
    job_dir TEXT NOT NULL
);
CREATE INDEX jobs_state ON jobs(state);
CREATE INDEX jobs_slurm ON jobs(slurm_job_id);
"""


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating and migrating if needed) the database at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=60, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version < SCHEMA_VERSION:
        with transaction(conn):
            if conn.execute("PRAGMA user_version").fetchone()[0] == 0:
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return conn


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolls back on any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def loads(text: str | None) -> Any:
    """Decode a JSON column (``None`` stays ``None``)."""
    return None if text is None else json.loads(text)


def dumps(value: Any) -> str:
    """Encode a JSON column deterministically."""
    return json.dumps(value, sort_keys=True)
