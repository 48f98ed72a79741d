"""Bringing the database up to date: ingest spool files, then reconcile with Slurm."""

from __future__ import annotations

import time

from gateway.context import Gateway
from spool.layout import pending_spool_files
from spool.report import IngestReport


def sync_state(gw: Gateway, *, quiet: bool = False) -> IngestReport:
    """Run at the start of every command that reads job or model state.

    When Slurm does not answer, the command goes on with the states last recorded and,
    unless ``quiet``, says so in one line. Ingest and reconciliation are imported only when
    there is something for them (`gw job list` is typed all day).
    """
    report = IngestReport()
    gw.conn  # noqa: B018 - the home and database are checked before anything is read
    if pending_spool_files(gw.layout.spool):
        from spool.ingest import ingest_spool

        # Never wait for a harvest another process is doing: answer from the database.
        report = ingest_spool(gw, wait=False)
    if gw.jobs.has_active() or gw.jobs.has_renders():
        from gateway.common.errors import SlurmError
        from spool.ingest import warn
        from spool.reconcile import outage, reconcile

        down = outage(gw)
        if down is not None and time.time() < float(down["next"]):
            # The controller was away a moment ago: answer from the database at once.
            if not quiet:
                since = time.strftime("%H:%M:%S", time.localtime(float(down["first"])))
                warn(f"Slurm has not answered since {since}; job states are the last known "
                     f"(next try in {float(down['next']) - time.time():.0f} s)")
            return report
        try:
            reconcile(gw)
        except SlurmError as exc:
            if not quiet:
                warn(f"Slurm did not answer; job states are the last known ({exc})")
    return report
