"""`gw job list` without click: the read command people type all day.

``cli.main`` hands ``gw job list [--json] [--limit N] [--state S]...`` here before anything
else is imported; whatever this parser does not fully understand (``--help``, an unknown
option, a bad value) goes to the click command instead, which says what is wrong. Both
print with :func:`print_job_list`, so the output is one.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.context import Gateway

STATE_NAMES = ("SUBMITTING", "PENDING", "RUNNING", "UNKNOWN", "COMPLETED", "FAILED",
               "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL")


def parse(args: list[str]) -> tuple[tuple[str, ...], int | None, bool] | None:
    """(states, limit, as_json) from the arguments after ``job list``, or None when they
    are anything but plain uses of those three options."""
    states: list[str] = []
    limit: int | None = None
    as_json = False
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        name, eq, value = arg.partition("=")
        if arg == "--json":
            as_json = True
            continue
        if name not in ("--state", "--limit"):
            return None
        if not eq:
            if not rest:
                return None
            value = rest.pop(0)
        if name == "--state":
            if value.upper() not in STATE_NAMES:
                return None
            states.append(value.upper())
        else:
            if not value.isdigit() or int(value) < 1:
                return None
            limit = int(value)
    return tuple(states), limit, as_json


TABLE_COLUMNS = ("id", "name", "state", "slurm_job_id", "node", "submitted", "exit_code")


def print_job_list(gw: Gateway, states: tuple[str, ...], limit: int | None,
                   as_json: bool) -> None:
    """The jobs, newest first, as a table or as JSON (the table reads only its columns)."""
    from gateway.common.display import human_time, print_json, print_table
    from gateway.jobs.actions import check_listing, list_jobs

    if as_json:
        print_json(list_jobs(gw, states, limit))
        return
    rows = gw.jobs.summary_rows(check_listing(states, limit), limit, TABLE_COLUMNS)
    print_table([(i, name, state, slurm_id, node or None, human_time(submitted), code)
                 for i, name, state, slurm_id, node, submitted, code in rows],
                ["ID", "NAME", "STATE", "SLURM_ID", "NODE", "SUBMITTED", "EXIT"])


def run(args: list[str]) -> int | None:
    """List jobs for ``args``; the exit status, or None to let the click command do it."""
    parsed = parse(args)
    if parsed is None:
        return None
    from gateway.common.errors import GatewayError
    from gateway.context import Gateway
    from spool.sync import sync_state

    states, limit, as_json = parsed
    try:
        gw = Gateway()
        sync_state(gw)
        print_job_list(gw, states, limit, as_json)
    except GatewayError as exc:
        print(f"gw: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0
