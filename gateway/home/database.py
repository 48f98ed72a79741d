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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from gateway.common.errors import DatabaseError

# The schema that first landed, verbatim. Never edit it: migrations build on it.
SCHEMA_1 = """
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


def _schema_1(conn: sqlite3.Connection) -> None:
    for statement in SCHEMA_1.split(";"):
        if statement.strip():
            conn.execute(statement)


def _schema_2(conn: sqlite3.Connection) -> None:
    """Jobs get a kind, an origin and ids that are never reused (AUTOINCREMENT: a failed
    submission used to be deleted and its id handed to the next job). ``meta`` holds the
    identity of the home the database belongs to (gateway/home/identity.py)."""
    conn.execute("""CREATE TABLE jobs_v2 (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL DEFAULT 'training',
        origin TEXT NOT NULL DEFAULT 'cli',   -- cli, adopted, ...: who made the record
        name TEXT NOT NULL,
        slurm_job_id TEXT,
        state TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        exit_code INTEGER,
        node TEXT NOT NULL DEFAULT '',
        submitted REAL NOT NULL,
        started REAL,
        ended REAL,
        updated REAL,                         -- when the state last changed
        algo_version_id INTEGER REFERENCES versions(id),
        data_version_id INTEGER REFERENCES versions(id),
        image_id INTEGER REFERENCES images(id),
        model_name TEXT NOT NULL,
        model_version_id INTEGER REFERENCES versions(id),
        spec_json TEXT NOT NULL,              -- command, env, resources, runtime, refs by name
        job_dir TEXT NOT NULL
    )""")
    conn.execute("""INSERT INTO jobs_v2 (id, name, slurm_job_id, state, reason, exit_code,
        node, submitted, started, ended, updated, algo_version_id, data_version_id, image_id,
        model_name, model_version_id, spec_json, job_dir)
        SELECT id, name, slurm_job_id, state, reason, exit_code, node, submitted, started,
        ended, COALESCE(ended, started, submitted), algo_version_id, data_version_id,
        image_id, model_name, model_version_id, spec_json, job_dir FROM jobs""")
    conn.execute("DROP TABLE jobs")
    conn.execute("ALTER TABLE jobs_v2 RENAME TO jobs")
    conn.execute("CREATE INDEX jobs_state ON jobs(state)")
    conn.execute("CREATE INDEX jobs_slurm ON jobs(slurm_job_id)")
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")


def _schema_3(conn: sqlite3.Connection) -> None:
    """Job templates (a recipe under a name: the options as typed and the command), the
    tasks of sweeps (one Slurm array job; each task its own state and model version), and
    rendered scripts (each run with plain sbatch becomes a job when it is first seen)."""
    conn.execute("""CREATE TABLE templates (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL UNIQUE,
        recipe_json TEXT NOT NULL,            -- the job options as typed (gw template show)
        command_json TEXT NOT NULL,           -- the command, {{ placeholders }} and all
        source_job_id INTEGER,                -- saved --from-job
        created REAL NOT NULL
    )""")
    conn.execute("""CREATE TABLE job_tasks (
        job_id INTEGER NOT NULL REFERENCES jobs(id),
        task INTEGER NOT NULL,                -- SLURM_ARRAY_TASK_ID
        params_json TEXT NOT NULL,            -- this task's sweep values
        state TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        exit_code INTEGER,
        node TEXT NOT NULL DEFAULT '',
        started REAL,
        ended REAL,
        model_version_id INTEGER REFERENCES versions(id),
        PRIMARY KEY (job_id, task)
    )""")
    conn.execute("""CREATE TABLE renders (
        id INTEGER PRIMARY KEY AUTOINCREMENT,  -- a script from `gw job render`, run by sbatch
        name TEXT NOT NULL,
        spec_json TEXT NOT NULL,              -- the job spec each run of it records
        model_name TEXT NOT NULL,
        algo_version_id INTEGER REFERENCES versions(id),
        data_version_id INTEGER REFERENCES versions(id),
        image_id INTEGER REFERENCES images(id),
        created REAL NOT NULL
    )""")


def _schema_4(conn: sqlite3.Connection) -> None:
    """Jobs get a shape beside their kind (gateway/jobs/shapes/): how many units run and how. A
    sweep was a kind of its own; it becomes what it is, a training job of array shape,
    with its tasks, spool files and job directory as they were; a run of a rendered script
    is of the rendered shape. A rendered script records the kind its runs are."""
    conn.execute("ALTER TABLE jobs ADD COLUMN shape TEXT NOT NULL DEFAULT 'single'")
    conn.execute("UPDATE jobs SET kind = 'training', shape = 'array' WHERE kind = 'sweep'")
    conn.execute("UPDATE jobs SET shape = 'rendered' WHERE origin = 'sbatch'")
    conn.execute("ALTER TABLE renders ADD COLUMN kind TEXT NOT NULL DEFAULT 'training'")


def _schema_5(conn: sqlite3.Connection) -> None:
    """Images get a state: a SIF is made by a Slurm job (the ``image_build`` kind), so an
    image is BUILDING until that job ends, then READY, or FAILED with the reason; the
    build job is kept beside it (its log is the build's). Images before were all made."""
    conn.execute("ALTER TABLE images ADD COLUMN state TEXT NOT NULL DEFAULT 'READY'")
    conn.execute("ALTER TABLE images ADD COLUMN reason TEXT NOT NULL DEFAULT ''")
    conn.execute("ALTER TABLE images ADD COLUMN build_job_id INTEGER")


# Step N moves the schema from N-1 to N. A new database runs every step and an old one the
# steps it has not had, so both take the same path. Never edit a landed step; add one.
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_schema_1, _schema_2,
                                                                 _schema_3, _schema_4, _schema_5)
SCHEMA_VERSION = len(MIGRATIONS)


def connect(path: Path) -> sqlite3.Connection:
    """Open the database at ``path``, creating it or running the migrations it lacks.

    The journal is SQLite's rollback journal (never WAL, whose shared memory network
    filesystems do not give). A database newer than this code is refused, not misread.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=60, isolation_level=None)
        conn.row_factory = sqlite3.Row
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    except (OSError, sqlite3.Error) as exc:
        raise DatabaseError(f"cannot open the database {path}: {exc}") from exc
    if version > SCHEMA_VERSION:
        conn.close()
        raise DatabaseError(f"the database {path} has schema {version}, newer than this gw "
                            f"knows ({SCHEMA_VERSION}): upgrade hpc-gateway")
    if version < SCHEMA_VERSION:
        migrate(conn)
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Run the steps the database has not had, in one transaction; returns the version.

    Two processes migrating at once take turns (``BEGIN IMMEDIATE``); the second finds
    nothing left to do. A step that fails leaves the database as it was.
    """
    conn.execute("PRAGMA foreign_keys = OFF")  # tables are rebuilt; checked below instead
    with transaction(conn):
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for number in range(version + 1, SCHEMA_VERSION + 1):
            MIGRATIONS[number - 1](conn)
            conn.execute(f"PRAGMA user_version = {number}")
        problems = conn.execute("PRAGMA foreign_key_check").fetchall()
        if problems:
            raise DatabaseError(f"migration found {len(problems)} broken reference(s), e.g. "
                                f"table {problems[0][0]} row {problems[0][1]}; nothing changed")
    return SCHEMA_VERSION


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolls back on any exception, a failed COMMIT
    included (a full disk), so the connection is never left inside a dead transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def loads(text: str | None) -> Any:
    """Decode a JSON column (``None`` stays ``None``)."""
    return None if text is None else json.loads(text)


def dumps(value: Any) -> str:
    """Encode a JSON column deterministically."""
    return json.dumps(value, sort_keys=True)
