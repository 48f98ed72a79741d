"""Finishing a one-unit job: its kind's end handler, then its final state, compare-and-set.

The shapes finish jobs here (gateway/shapes/). The end handler runs first and must be
repeatable (harvest is), so a crash between the two, or a second ingester, ends with
exactly one result; the state change is a compare-and-set from the unfinished states, so
the first to finish a job wins and nothing overwrites it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hpc_gateway.gateway.context import Gateway
from hpc_gateway.gateway.job_model import ACTIVE, Job
from hpc_gateway.gateway.kinds import kind_of
from hpc_gateway.gateway.kinds.base import JobEnd
from hpc_gateway.spool.end import failure_reason
from hpc_gateway.spool.format import SpoolRecord

if TYPE_CHECKING:
    from hpc_gateway.gateway.shapes.base import Unit

__all__ = ["failure_reason", "finish_job"]


def finish_job(gw: Gateway, job: Job, state: str, reason: str, record: SpoolRecord | None,
               unit: Unit, **facts: Any) -> bool:
    """Run the kind's end handler for the job's only ``unit``, then move the job to
    ``state``; returns whether this call finished it (False when someone else had)."""
    if not job.active:
        return False
    note = kind_of(job).on_end(gw, job, unit, JobEnd(state, record))
    full_reason = "; ".join(part for part in (reason, note) if part)
    return gw.jobs.transition(job.id, ACTIVE, state, reason=full_reason[:1000], **facts)
