"""Job templates: a recipe (the job options as typed and the command) kept under a name.

This module owns the SQL of the ``templates`` table. Running a template is
gateway/commands/templates.py with gateway/recipes.py.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from hpc_gateway.gateway import db
from hpc_gateway.gateway.context import Gateway
from hpc_gateway.gateway.errors import AlreadyExists, NotFound
from hpc_gateway.gateway.job_model import hide_env_values
from hpc_gateway.gateway.recipes import placeholders
from hpc_gateway.gateway.specs import check_name


@dataclass(frozen=True)
class JobTemplate:
    """A saved recipe."""

    name: str
    options: dict[str, Any]
    command: tuple[str, ...]
    source_job_id: int | None
    created: float

    def as_dict(self) -> dict[str, Any]:
        """What `gw template show --json` prints (``--env`` values hidden)."""
        return {"name": self.name, "options": hide_env_values(self.options),
                "command": list(self.command), "placeholders": placeholders(self.command),
                "source_job_id": self.source_job_id, "created": self.created}


def save_template(gw: Gateway, name: str, options: dict[str, Any], command: tuple[str, ...],
                  source_job_id: int | None = None, replace: bool = False) -> JobTemplate:
    """Keep a recipe under ``name`` (refused if the name is taken, unless ``replace``)."""
    check_name(name, "template")
    row = (name, db.dumps(options), db.dumps(list(command)), source_job_id, time.time())
    with db.transaction(gw.conn):
        try:
            if replace:
                gw.conn.execute("DELETE FROM templates WHERE name = ?", (name,))
            gw.conn.execute("""INSERT INTO templates (name, recipe_json, command_json,
                               source_job_id, created) VALUES (?, ?, ?, ?, ?)""", row)
        except sqlite3.IntegrityError as exc:
            raise AlreadyExists(f"a template named {name!r} exists: pick another name, or "
                                "give --replace") from exc
    return get_template(gw, name)


def get_template(gw: Gateway, name: str) -> JobTemplate:
    """The template called ``name``."""
    row = gw.conn.execute("SELECT * FROM templates WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise NotFound(f"no template named {name!r} (see `gw template list`)")
    return _template(row)


def list_templates(gw: Gateway) -> list[JobTemplate]:
    """Every template, by name."""
    return [_template(r) for r in gw.conn.execute("SELECT * FROM templates ORDER BY name")]


def remove_template(gw: Gateway, name: str) -> None:
    """Forget a template (the jobs run from it keep their recipe)."""
    with db.transaction(gw.conn):
        if gw.conn.execute("DELETE FROM templates WHERE name = ?", (name,)).rowcount == 0:
            raise NotFound(f"no template named {name!r} (see `gw template list`)")


def _template(row: sqlite3.Row) -> JobTemplate:
    return JobTemplate(row["name"], db.loads(row["recipe_json"]),
                       tuple(db.loads(row["command_json"])), row["source_job_id"],
                       row["created"])
