"""Finishing a one-unit job: its kind's end handler, then its final state, compare-and-set.

The shapes finish jobs here (gateway/jobs/shapes/). The end handler runs first and must be
repeatable (harvest is), so a crash between the two, or a second ingester, ends with
exactly one result; the state change is a compare-and-set from the unfinished states, so
the first to finish a job wins and nothing overwrites it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateway.context import Gateway
from gateway.jobs.kinds import kind_of
from gateway.jobs.kinds.base import JobEnd
from gateway.jobs.model import ACTIVE, Job
from spool.end import failure_reason
from spool.format import SpoolRecord

if TYPE_CHECKING:
    from gateway.jobs.shapes.base import Unit

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
