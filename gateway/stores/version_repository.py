"""Every SQL statement on the ``versions`` and ``collections`` tables, and nothing else
does: the stores (gateway/stores/versioned.py), the harvest (spool/harvest.py), notebooks and
completion ask this repository."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from gateway.home import database as db

_SELECT = """SELECT v.*, c.name AS name FROM versions v
             JOIN collections c ON c.id = v.collection_id WHERE c.kind = ?"""


class VersionRepository:
    """The versions of one kind ("algo", "data" or "model") in one gateway database."""

    def __init__(self, conn: sqlite3.Connection, kind: str) -> None:
        self.conn = conn
        self.kind = kind

    # ---- reading -----------------------------------------------------------------------
    def collections(self) -> list[dict[str, Any]]:
        """Every name with versions: its count, latest number and last change."""
        rows = self.conn.execute(
            """SELECT c.name, COUNT(v.id) AS versions, MAX(v.number) AS latest,
                      MAX(v.created) AS updated
               FROM collections c LEFT JOIN versions v ON v.collection_id = c.id
               WHERE c.kind = ? GROUP BY c.id HAVING COUNT(v.id) > 0 ORDER BY c.name""",
            (self.kind,)).fetchall()
        return [dict(row) for row in rows]

    def names(self) -> list[str]:
        """Every collection name, sorted."""
        rows = self.conn.execute("SELECT name FROM collections WHERE kind = ? ORDER BY name",
                                 (self.kind,)).fetchall()
        return [r[0] for r in rows]

    def rows_of(self, name: str) -> list[sqlite3.Row]:
        """The versions of ``name``, oldest first."""
        return self.conn.execute(_SELECT + " AND c.name = ? ORDER BY v.number",
                                 (self.kind, name)).fetchall()

    def numbers(self, name: str) -> list[int]:
        """The version numbers of ``name``, in order."""
        return [r["number"] for r in self.rows_of(name)]

    def row(self, name: str, number: int) -> sqlite3.Row | None:
        """Version ``number`` of ``name``."""
        row: sqlite3.Row | None = self.conn.execute(
            _SELECT + " AND c.name = ? AND v.number = ?", (self.kind, name, number)).fetchone()
        return row

    def row_by_id(self, version_id: int) -> sqlite3.Row | None:
        """The version with database id ``version_id``."""
        row: sqlite3.Row | None = self.conn.execute(
            _SELECT + " AND v.id = ?", (self.kind, version_id)).fetchone()
        return row

    def latest(self, collection_id: int) -> sqlite3.Row | None:
        """The newest version of a collection."""
        row: sqlite3.Row | None = self.conn.execute(
            "SELECT * FROM versions WHERE collection_id = ? ORDER BY number DESC LIMIT 1",
            (collection_id,)).fetchone()
        return row

    def path_of(self, version_id: int) -> str | None:
        """Where version ``version_id`` lives (any kind)."""
        row = self.conn.execute("SELECT path FROM versions WHERE id = ?",
                                (version_id,)).fetchone()
        return None if row is None else str(row[0])

    def saved_by_notebook(self, job_id: int) -> list[tuple[str, int]]:
        """(name, number) of the versions notebook job ``job_id`` saved, oldest first."""
        rows = self.conn.execute(
            """SELECT c.name, v.number FROM versions v JOIN collections c
               ON c.id = v.collection_id
               WHERE c.kind = ? AND json_extract(v.meta_json, '$.notebook_job') = ?
               ORDER BY v.number""", (self.kind, job_id)).fetchall()
        return [(r[0], r[1]) for r in rows]

    # ---- writing (inside the caller's transaction) ---------------------------------------
    def ensure_collection(self, name: str) -> int:
        """Id of the collection ``name``, created if new."""
        row = self.conn.execute("SELECT id FROM collections WHERE kind = ? AND name = ?",
                                (self.kind, name)).fetchone()
        if row is not None:
            return int(row[0])
        cursor = self.conn.execute(
            "INSERT INTO collections (kind, name, created) VALUES (?, ?, ?)",
            (self.kind, name, time.time()))
        return int(cursor.lastrowid or 0)

    def highest_number(self, collection_id: int) -> int:
        """The highest version number recorded (0 for none)."""
        row = self.conn.execute("SELECT MAX(number) FROM versions WHERE collection_id = ?",
                                (collection_id,)).fetchone()
        return int(row[0] or 0)

    def insert(self, *, collection_id: int, number: int, path: str, file_count: int,
               size_bytes: int, meta: dict[str, Any], tree_digest: str | None = None,
               job_id: int | None = None) -> int:
        """Record a version; returns its id."""
        cursor = self.conn.execute(
            """INSERT INTO versions (collection_id, number, path, file_count, size_bytes,
               tree_digest, meta_json, job_id, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            (collection_id, number, path, file_count, size_bytes, tree_digest,
             db.dumps(meta), job_id, time.time()))
        return int(cursor.lastrowid or 0)

    def delete(self, version_id: int) -> None:
        """Forget a version."""
        self.conn.execute("DELETE FROM versions WHERE id = ?", (version_id,))
