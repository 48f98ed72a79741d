"""Finishing a job: its kind's end handler, then its final state, compare-and-set.

Ingest (from a spool file) and reconciliation (from Slurm) both finish jobs here. The end
handler runs first and must be repeatable (harvest is), so a crash between the two, or a
second ingester, ends with exactly one result; the state change is a compare-and-set from
the unfinished states, so the first to finish a job wins and nothing overwrites it.
"""

from __future__ import annotations

from typing import Any

from hpc_gateway.gateway.context import Gateway
from hpc_gateway.gateway.job_model import ACTIVE, Job
from hpc_gateway.gateway.kinds import get_kind
from hpc_gateway.gateway.kinds.base import JobEnd
from hpc_gateway.spool.format import SpoolRecord

SIGNAL_NAMES = {129: "SIGHUP", 130: "SIGINT", 134: "SIGABRT", 137: "SIGKILL", 139: "SIGSEGV",
                143: "SIGTERM"}


def failure_reason(exit_code: int) -> str:
    """Why a job with this exit status failed, in words."""
    if exit_code in SIGNAL_NAMES:
        return f"killed by {SIGNAL_NAMES[exit_code]} (exit code {exit_code})"
    return f"the command exited with code {exit_code}"


def finish_job(gw: Gateway, job: Job, state: str, reason: str,
               record: SpoolRecord | None = None, **facts: Any) -> bool:
    """Run the kind's end handler, then move the job to ``state``; returns whether this
    call finished it (False when someone else already had)."""
    if not job.active:
        return False
    note = get_kind(job.kind).on_end(gw, job, JobEnd(state, record))
    full_reason = "; ".join(part for part in (reason, note) if part)
    return gw.jobs.transition(job.id, ACTIVE, state, reason=full_reason[:1000], **facts)
