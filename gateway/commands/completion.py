"""Shell completion: `gw completion bash|zsh|fish`, and the names each argument completes.

Completions read the person's database read-only and directly (no Slurm, no sync, no
migration): a TAB must answer at once and never change anything. Any error completes
nothing. Cheap to import: everything is loaded inside the functions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    import sqlite3

    from click.shell_completion import CompletionItem

SHELLS = ("bash", "zsh", "fish")
T = TypeVar("T")


def _read(query: Callable[[sqlite3.Connection], T]) -> T | None:
    """``query`` over a read-only connection to the database (None when there is none or
    anything fails: a completion never fails loudly)."""
    import sqlite3

    from gateway.home.config import load_config

    try:
        database = load_config().database
        if not database.exists():
            return None
        conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=0.5)
        try:
            conn.row_factory = sqlite3.Row
            return query(conn)
        finally:
            conn.close()
    except Exception:
        return None


def _rows(sql: str, *params: Any) -> list[sqlite3.Row]:
    return _read(lambda conn: conn.execute(sql, params).fetchall()) or []


def _items(values: list[tuple[str, str | None]], incomplete: str) -> list[CompletionItem]:
    from click.shell_completion import CompletionItem

    return [CompletionItem(value, help=help_text) for value, help_text in values
            if value.startswith(incomplete)]


def complete_images(_ctx: click.Context, _param: click.Parameter,
                    incomplete: str) -> list[CompletionItem]:
    """Your image names, then the site's."""
    values: list[tuple[str, str | None]] = [
        (r["name"], None) for r in _rows("SELECT name FROM image_tags ORDER BY name")]
    from contextlib import suppress

    with suppress(Exception):  # an unsafe site store completes nothing of its own
        from gateway.home.config import load_config
        from gateway.stores.site_images import list_site_images

        values += [(i.name, "site image") for i in list_site_images(load_config())]
    return _items(values, incomplete)


def store_completer(kind: str) -> Callable[[click.Context, click.Parameter, str],
                                           list[CompletionItem]]:
    """Names of ``kind`` ("algo", "data", "model"); after ``NAME@``, its versions."""
    def complete(_ctx: click.Context, _param: click.Parameter,
                 incomplete: str) -> list[CompletionItem]:
        from gateway.stores.version_repository import VersionRepository

        if "@" in incomplete:
            name = incomplete.partition("@")[0]
            numbers = _read(lambda conn: VersionRepository(conn, kind).numbers(name))
            return _items([(f"{name}@v{n}", None) for n in numbers or []], incomplete)
        names = _read(lambda conn: VersionRepository(conn, kind).names())
        return _items([(n, None) for n in names or []], incomplete)
    return complete


def complete_templates(_ctx: click.Context, _param: click.Parameter,
                       incomplete: str) -> list[CompletionItem]:
    """Saved job template names."""
    return _items([(r["name"], None) for r in _rows("SELECT name FROM templates ORDER BY name")],
                  incomplete)


def complete_flavors(_ctx: click.Context, _param: click.Parameter,
                     incomplete: str) -> list[CompletionItem]:
    """The flavors of the site and the user."""
    try:
        from gateway.home.config import load_config

        names = sorted(load_config()["flavors"])
    except Exception:
        return []
    return _items([(n, None) for n in names], incomplete)


class JobIdType(click.IntRange):
    """A gateway job id (1 and up); completes the newest jobs, with their names."""

    def __init__(self) -> None:
        super().__init__(1, 2**63 - 1)

    def shell_complete(self, ctx: click.Context, param: click.Parameter,
                       incomplete: str) -> list[CompletionItem]:
        rows = _rows("SELECT id, name, state FROM jobs ORDER BY id DESC LIMIT 200")
        return _items([(str(r["id"]), f"{r['name']} ({r['state']})") for r in rows],
                      incomplete)


JOB_ID = JobIdType()


@click.command("completion")
@click.argument("shell", type=click.Choice(SHELLS))
def completion_cmd(shell: str) -> None:
    """Print the completion script for SHELL: commands, options, and your image, algorithm,
    dataset, model, template and job names.

    \b
    bash:  echo 'eval "$(gw completion bash)"' >> ~/.bashrc
    zsh:   echo 'eval "$(gw completion zsh)"' >> ~/.zshrc
    fish:  gw completion fish > ~/.config/fish/completions/gw.fish
    """
    from click.shell_completion import get_completion_class

    from gateway.commands.root import cli

    completer = get_completion_class(shell)
    assert completer is not None
    click.echo(completer(cli, {}, "gw", "_GW_COMPLETE").source())
