"""Command groups of the `gw` CLI (cli.py holds the root group and the entry point).

Each module defines click commands that parse, call a service in gateway/ and print.
Everything heavy is imported inside the command that needs it: `gw --help` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.context import Gateway

import click

json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print JSON for scripts instead of a table.")


def open_gateway() -> Gateway:
    """The Gateway for this command (configuration, home, database, Slurm)."""
    from gateway.context import Gateway

    return Gateway()


def synced_gateway() -> Gateway:
    """A Gateway whose job states are brought up to date first (spool files, Slurm)."""
    from spool.sync import sync_state

    gw = open_gateway()
    sync_state(gw)
    return gw
