"""Bringing the database up to date: ingest spool files, then reconcile with Slurm."""

from __future__ import annotations

import sys

from hpc_gateway.gateway.context import Gateway
from hpc_gateway.gateway.errors import SlurmError


def sync_state(gw: Gateway, *, quiet: bool = False) -> list[int]:
    """Run at the start of every command that reads job or model state."""
    from hpc_gateway.spool.ingest import ingest_spool
    from hpc_gateway.spool.reconcile import reconcile

    changed = ingest_spool(gw)
    try:
        reconcile(gw)
    except SlurmError as exc:
        if not quiet:
            print(f"gw: warning: could not ask Slurm about active jobs: {exc}", file=sys.stderr)
    return changed
