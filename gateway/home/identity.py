"""The database belongs to its home, and a home to one database.

A home records its identity in ``GW_HOME/home.json`` (a random home id and the id of the
one database that owns it); the database stores the same ids in its ``meta`` table. Every
command checks that they match before it writes anything. This refuses the two mistakes
that silently corrupt a gateway: a database pointed at another home (``GW_DATABASE`` or
``GW_HOME`` changed alone), and a second database on one home (two login nodes each with
a local database over one shared ``GW_HOME``, which would both hand out job 1).
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

from gateway.common.errors import HomeMismatch
from gateway.home import database as db

IDENTITY_FILE = "home.json"


def identity_path(home: Path) -> Path:
    """Where a home keeps its identity."""
    return home / IDENTITY_FILE


def _read_file(path: Path) -> dict[str, str] | None:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise HomeMismatch(f"{path} is unreadable ({exc}); it names the database that owns "
                           "this home: restore it, or move the home aside") from exc
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str)
                                             for k in ("home_id", "database_id")):
        raise HomeMismatch(f"{path} is not a gateway home identity")
    return data


def _write_file_exclusive(path: Path, data: dict[str, str]) -> bool:
    """Create ``path`` with ``data`` unless it exists (atomic on local and NFS: link)."""
    import uuid

    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(data, out, indent=2)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def _meta(conn: sqlite3.Connection) -> dict[str, str]:
    return {r["key"]: r["value"] for r in conn.execute("SELECT key, value FROM meta")}


def bind_home(conn: sqlite3.Connection, home: Path, database: Path) -> str:
    """Check that ``conn`` (the database at ``database``) and ``home`` belong together,
    making both identities on first use; returns the home id.

    Raises :class:`HomeMismatch` with what to do when they do not.
    """
    meta = _meta(conn)
    if meta.get("home_id"):
        _check(meta, _read_file(identity_path(home)), home, database)
        return meta["home_id"]
    with db.transaction(conn):
        meta = _meta(conn)
        if not meta.get("home_id"):
            meta = _claim(conn, home, database)
    _check(meta, _read_file(identity_path(home)), home, database)
    return meta["home_id"]


def _claim(conn: sqlite3.Connection, home: Path, database: Path) -> dict[str, str]:
    """First use of this database: take the home if nobody owns it yet."""
    import socket
    import time
    import uuid

    path = identity_path(home)
    existing = _read_file(path)
    if existing is None:
        mine = {"home_id": uuid.uuid4().hex[:16], "database_id": uuid.uuid4().hex[:16],
                "database": str(database), "host": socket.gethostname(),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
        if not _write_file_exclusive(path, mine):
            existing = _read_file(path)
    if existing is not None:
        raise HomeMismatch(
            f"GW_HOME {home} belongs to another database ({existing.get('database', '?')}, "
            f"made on {existing.get('host', '?')}), not {database}: a second database on "
            "one home would hand out the same job ids twice. Point GW_DATABASE at that "
            "database, or use another GW_HOME")
    for key in ("home_id", "database_id"):
        conn.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, mine[key]))
    conn.execute("INSERT INTO meta (key, value) VALUES ('home', ?)", (str(home),))
    return {**_meta(conn)}


def _check(meta: dict[str, str], found: dict[str, str] | None, home: Path,
           database: Path) -> None:
    if found is None:
        raise HomeMismatch(
            f"the database {database} belongs to the home {meta.get('home', '?')} "
            f"(id {meta['home_id']}), but GW_HOME {home} has no identity ({IDENTITY_FILE}): "
            "point GW_HOME at the database's home, or GW_DATABASE at this home's database")
    if found["home_id"] != meta["home_id"]:
        raise HomeMismatch(
            f"the database {database} belongs to the home {meta.get('home', '?')} "
            f"(id {meta['home_id']}), not to GW_HOME {home} (id {found['home_id']}): point "
            "GW_HOME and GW_DATABASE at one pair")
    if found["database_id"] != meta["database_id"]:
        raise HomeMismatch(
            f"GW_HOME {home} belongs to another database ({found.get('database', '?')}, "
            f"made on {found.get('host', '?')}), not {database}: point GW_DATABASE at it")
