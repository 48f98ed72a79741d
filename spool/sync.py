"""Bringing the database up to date: ingest spool files, then reconcile with Slurm."""

from __future__ import annotations

from hpc_gateway.gateway.context import Gateway
from hpc_gateway.gateway.errors import SlurmError
from hpc_gateway.spool.ingest import IngestReport, ingest_spool, warn
from hpc_gateway.spool.reconcile import reconcile


def sync_state(gw: Gateway, *, quiet: bool = False) -> IngestReport:
    """Run at the start of every command that reads job or model state.

    When Slurm does not answer, the command goes on with the states last recorded and,
    unless ``quiet``, says so in one line.
    """
    report = ingest_spool(gw)
    try:
        reconcile(gw)
    except SlurmError as exc:
        if not quiet:
            warn(f"Slurm did not answer; job states are the last known ({exc})")
    return report
