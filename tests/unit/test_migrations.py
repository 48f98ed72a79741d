"""Schema migrations: a database written by the landed code opens with nothing lost."""

import sqlite3
from pathlib import Path

import pytest

from gateway.common.errors import DatabaseError
from gateway.home import database as db

FIXTURE = Path(__file__).parent.parent / "fixtures" / "gateway-schema1.sql"


def schema1_database(path: Path) -> Path:
    """The database the real CLI of schema 1 wrote (tests/fixtures/gateway-schema1.sql)."""
    conn = sqlite3.connect(path)
    conn.executescript(FIXTURE.read_text())
    conn.close()
    return path


def rows(conn, table):
    return [dict(r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY rowid")]


def test_schema1_database_migrates_with_nothing_lost(tmp_path):
    path = schema1_database(tmp_path / "gateway.db")
    old = sqlite3.connect(path)
    old.row_factory = sqlite3.Row
    before = {t: rows(old, t) for t in ("images", "image_tags", "collections", "versions",
                                        "jobs")}
    old.close()
    assert before["jobs"] and before["versions"]  # the fixture is not empty
    conn = db.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == db.SCHEMA_VERSION
    for table in ("image_tags", "collections", "versions"):
        assert rows(conn, table) == before[table]
    images = rows(conn, "images")
    assert [{k: row[k] for k in old} for row, old in zip(images, before["images"],
                                                          strict=True)] == before["images"]
    # schema 5: the images made before are READY, with no build job of their own
    assert {(row["state"], row["reason"], row["build_job_id"]) for row in images} == {
        ("READY", "", None)}
    after = rows(conn, "jobs")
    assert len(after) == len(before["jobs"])
    for old_row, new_row in zip(before["jobs"], after, strict=True):
        assert {k: new_row[k] for k in old_row} == old_row  # every old column, same value
        assert new_row["kind"] == "training" and new_row["origin"] == "cli"
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    # the migrated jobs table never reuses an id
    top = max(r["id"] for r in after)
    conn.execute("DELETE FROM jobs WHERE id = ?", (top,))
    cur = conn.execute("INSERT INTO jobs (name, state, submitted, model_name, spec_json, "
                       "job_dir) VALUES ('n', 'FAILED', 0, 'm', '{}', '')")
    assert cur.lastrowid == top + 1


def test_migrated_database_reads_through_the_repository(tmp_path):
    from gateway.jobs.repository import JobRepository

    conn = db.connect(schema1_database(tmp_path / "gateway.db"))
    jobs = {j["name"]: j for j in JobRepository(conn).summaries()}
    ok = JobRepository(conn).get(jobs["ok"]["id"])
    assert ok.state == "COMPLETED" and ok.model_ref == "probe@v1"
    assert ok.spec.algo == "probe@v1" and ok.spec.command == ("sh", "train.sh")
    assert JobRepository(conn).get(jobs["fails"]["id"]).state == "FAILED"


def test_new_database_and_migrated_one_have_the_same_schema(tmp_path):
    fresh = db.connect(tmp_path / "fresh.db")
    migrated = db.connect(schema1_database(tmp_path / "old.db"))
    query = "SELECT type, name, sql FROM sqlite_master WHERE name != 'sqlite_sequence' " \
            "ORDER BY name"
    assert [tuple(r) for r in fresh.execute(query)] == [tuple(r) for r in migrated.execute(query)]


def test_a_newer_database_is_refused(tmp_path):
    path = tmp_path / "future.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {db.SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(DatabaseError, match="newer"):
        db.connect(path)


def test_a_failed_step_leaves_the_database_as_it_was(tmp_path, monkeypatch):
    path = schema1_database(tmp_path / "gateway.db")

    def broken(conn):
        conn.execute("CREATE TABLE half_done (x)")
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(db, "MIGRATIONS", (*db.MIGRATIONS, broken))
    monkeypatch.setattr(db, "SCHEMA_VERSION", len(db.MIGRATIONS))
    with pytest.raises(sqlite3.OperationalError):
        db.connect(path)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert "half_done" not in names and "meta" not in names


def test_schema3_sweep_becomes_a_training_job_of_array_shape(tmp_path):
    """Step 4: a sweep was a kind; it becomes a training job of array shape with its tasks
    as they were, a rendered script's run gets the rendered shape, every other job stays."""
    path = tmp_path / "gateway.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    for number, step in enumerate(db.MIGRATIONS[:3], 1):
        step(conn)
        conn.execute(f"PRAGMA user_version = {number}")
    job = ("INSERT INTO jobs (id, kind, origin, name, state, submitted, model_name, spec_json, "
           "job_dir) VALUES (?, ?, ?, ?, 'COMPLETED', 0, 'm', '{}', ?)")
    for row in [(1, "sweep", "template", "s", "/h/jobs/1"),
                (2, "notebook", "cli", "n", "/h/jobs/2"),
                (3, "headless", "cli", "b", "/h/jobs/3"),
                (4, "training", "sbatch", "r", "/h/jobs/sbatch-9"),
                (5, "training", "cli", "t", "/h/jobs/5")]:
        conn.execute(job, row)
    conn.execute("INSERT INTO job_tasks (job_id, task, params_json, state) VALUES "
                 "(1, 0, '{\"lr\": \"1\"}', 'COMPLETED'), (1, 1, '{\"lr\": \"2\"}', 'FAILED')")
    conn.execute("INSERT INTO renders (name, spec_json, model_name, created) "
                 "VALUES ('r', '{}', 'm', 0)")
    before_tasks = rows(conn, "job_tasks")
    conn.close()
    migrated = db.connect(path)
    shapes = {r["id"]: (r["kind"], r["shape"]) for r in rows(migrated, "jobs")}
    assert shapes == {1: ("training", "array"), 2: ("notebook", "single"),
                      3: ("headless", "single"), 4: ("training", "rendered"),
                      5: ("training", "single")}
    assert rows(migrated, "job_tasks") == before_tasks
    assert [r["kind"] for r in rows(migrated, "renders")] == ["training"]
