"""Saved job recipes (`gw recipe`): the job options as typed and the command, kept under a
name. (Not sbatch templates: those are gateway/jobs/sbatch_templates.py.)

This module owns the SQL of the ``templates`` table (its name from before recipes were
called so). Running a saved recipe is gateway/commands/recipes.py with gateway/jobs/recipes.py.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from gateway.common.errors import AlreadyExists, NotFound
from gateway.common.specs import check_name
from gateway.context import Gateway
from gateway.home import database as db
from gateway.jobs.model import hide_env_values
from gateway.jobs.recipes import normalize_options, placeholders


@dataclass(frozen=True)
class SavedRecipe:
    """A saved recipe."""

    name: str
    options: dict[str, Any]
    command: tuple[str, ...]
    source_job_id: int | None
    created: float

    def as_dict(self) -> dict[str, Any]:
        """What `gw recipe show --json` prints (``--env`` values hidden)."""
        return {"name": self.name, "options": hide_env_values(self.options),
                "command": list(self.command), "placeholders": placeholders(self.command),
                "source_job_id": self.source_job_id, "created": self.created}


def save_recipe(gw: Gateway, name: str, options: dict[str, Any], command: tuple[str, ...],
                  source_job_id: int | None = None, replace: bool = False) -> SavedRecipe:
    """Keep a recipe under ``name`` (refused if the name is taken, unless ``replace``)."""
    check_name(name, "recipe")
    row = (name, db.dumps(options), db.dumps(list(command)), source_job_id, time.time())
    with db.transaction(gw.conn):
        try:
            if replace:
                gw.conn.execute("DELETE FROM templates WHERE name = ?", (name,))
            gw.conn.execute("""INSERT INTO templates (name, recipe_json, command_json,
                               source_job_id, created) VALUES (?, ?, ?, ?, ?)""", row)
        except sqlite3.IntegrityError as exc:
            raise AlreadyExists(f"a recipe named {name!r} exists: pick another name, or "
                                "give --replace") from exc
    return get_recipe(gw, name)


def get_recipe(gw: Gateway, name: str) -> SavedRecipe:
    """The saved recipe called ``name``."""
    row = gw.conn.execute("SELECT * FROM templates WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise NotFound(f"no recipe named {name!r} (see `gw recipe list`)")
    return _recipe(row)


def list_recipes(gw: Gateway) -> list[SavedRecipe]:
    """Every saved recipe, by name."""
    return [_recipe(r) for r in gw.conn.execute("SELECT * FROM templates ORDER BY name")]


def remove_recipe(gw: Gateway, name: str) -> None:
    """Forget a saved recipe (the jobs run from it keep theirs)."""
    with db.transaction(gw.conn):
        if gw.conn.execute("DELETE FROM templates WHERE name = ?", (name,)).rowcount == 0:
            raise NotFound(f"no recipe named {name!r} (see `gw recipe list`)")


def _recipe(row: sqlite3.Row) -> SavedRecipe:
    return SavedRecipe(row["name"], normalize_options(db.loads(row["recipe_json"])),
                       tuple(db.loads(row["command_json"])), row["source_job_id"],
                       row["created"])
