"""`gw job list` without click: the read command people type all day.

``cli.main`` hands ``gw job list [--json] [--limit N] [--state S]...`` here before anything
else is imported; whatever this parser does not fully understand (``--help``, an unknown
option, a bad value) goes to the click command instead, which says what is wrong. Both
print with :func:`print_job_list`, so the output is one.
"""

from __future__ import annotations

import sys
from typing import Any

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


def print_job_list(jobs: list[dict[str, Any]], as_json: bool) -> None:
    """The jobs as a table, or as JSON."""
    from hpc_gateway.gateway.display import human_time, print_json, print_table

    if as_json:
        print_json(jobs)
    else:
        print_table([(j["id"], j["name"], j["state"], j["slurm_job_id"], j["node"] or None,
                      human_time(j["submitted"]), j["exit_code"]) for j in jobs],
                    ["ID", "NAME", "STATE", "SLURM_ID", "NODE", "SUBMITTED", "EXIT"])


def run(args: list[str]) -> int | None:
    """List jobs for ``args``; the exit status, or None to let the click command do it."""
    parsed = parse(args)
    if parsed is None:
        return None
    from hpc_gateway.gateway.context import Gateway
    from hpc_gateway.gateway.errors import GatewayError
    from hpc_gateway.gateway.jobs import list_jobs
    from hpc_gateway.spool.sync import sync_state

    states, limit, as_json = parsed
    try:
        gw = Gateway()
        sync_state(gw)
        print_job_list(list_jobs(gw, states, limit), as_json)
    except GatewayError as exc:
        print(f"gw: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0
