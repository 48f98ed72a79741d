"""Reconcile: bring unfinished jobs up to date from Slurm, in batched calls.

One ``squeue`` call for all of them; one ``sacct`` call for those squeue no longer lists;
one more ``sacct`` only when a job is still SUBMITTING past its grace. A job missing from
squeue is not proof of success: only its spool file says that. If slurmctld cannot be
reached, jobs become UNKNOWN (never FAILED) with the last state known, and recover when it
answers. Every change is a compare-and-set from the state that was read, so a job the
spool finished meanwhile is never turned back.

Jobs still SUBMITTING (the gateway died between sbatch and recording its answer, or sbatch
timed out after the controller took the job) are adopted by the identity in their Slurm
comment, so no Slurm job is orphaned or counted twice.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from gateway.common.atomic import write_atomic
from gateway.common.backoff import SLURM_FIRST_SECONDS, SLURM_MAX_SECONDS, delay_after
from gateway.common.errors import SlurmUnavailable
from gateway.context import Gateway
from gateway.jobs.attempts import release_requeue_delay
from gateway.jobs.end import decide_end
from gateway.jobs.identity import parse_identity_comment
from gateway.jobs.model import ACTIVE, Job, state_from_slurm
from gateway.jobs.shapes import shape_of
from gateway.slurm.adapter import SlurmJobState, array_tasks
from spool.accounting import final_records
from spool.layout import pending_spool_files

if TYPE_CHECKING:
    from pathlib import Path

    from gateway.jobs.values import Unit

# A job still SUBMITTING this long after its record was made, and unknown to Slurm by its
# identity, never reached Slurm: sbatch's own timeout plus a margin.
SUBMITTING_GRACE_SECONDS = 180


# While slurmctld does not answer, read commands answer from the database at once and ask
# again after a delay that doubles (gateway/common/backoff.py); GW_HOME/spool/OUTAGE_FILE keeps it.
OUTAGE_FILE = ".slurm-unreachable.json"


def outage(gw: Gateway) -> dict[str, float | str] | None:
    """The current outage of slurmctld as last seen: first and last failure, tries, the
    time of the next try, the message; None when Slurm answered last time."""
    try:
        data = json.loads((gw.layout.spool / OUTAGE_FILE).read_text())
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def _note_outage(gw: Gateway, exc: SlurmUnavailable) -> None:
    now = time.time()
    seen = outage(gw) or {"first": now, "tries": 0}
    tries = int(seen.get("tries", 0)) + 1
    wait = delay_after(tries, SLURM_FIRST_SECONDS, SLURM_MAX_SECONDS)
    data = {"first": seen.get("first", now), "last": now, "tries": tries,
            "next": now + wait, "message": str(exc)[:300]}
    with contextlib.suppress(OSError):
        write_atomic(gw.layout.spool / OUTAGE_FILE, json.dumps(data))


def _end_outage(gw: Gateway) -> None:
    with contextlib.suppress(OSError):
        (gw.layout.spool / OUTAGE_FILE).unlink()


def reconcile(gw: Gateway) -> None:
    """Bring the states of unfinished jobs up to date; raises SlurmUnavailable (after
    marking the jobs UNKNOWN and noting the outage) when slurmctld does not answer."""
    jobs = gw.jobs.active()
    renders = gw.jobs.has_renders()
    if not jobs and not renders:
        return
    try:
        queue = gw.slurm.query_active()
    except SlurmUnavailable as exc:
        _mark_unknown(gw, jobs, exc)
        _note_outage(gw, exc)
        raise
    _end_outage(gw)
    if renders and _record_runs(gw, queue):
        jobs = gw.jobs.active()
    submitting = [j for j in jobs if j.slurm_job_id is None]
    if submitting:
        _adopt(gw, submitting, queue)
    _follow_units(gw, [j for j in jobs if j.slurm_job_id is not None], queue)


def _follow_units(gw: Gateway, jobs: list[Job], queue: dict[str, SlurmJobState]) -> None:
    """Every unfinished unit whose spool file has not come: followed while Slurm runs it,
    its end decided (gateway/jobs/end.py) from accounting once Slurm no longer does."""
    pending = {p.name for p in pending_spool_files(gw.layout.spool)}
    live = {**queue, **array_tasks(queue.values())}   # by job id and by ``array_task``
    gone: list[tuple[Job, Unit]] = []
    for job in jobs:
        shape = shape_of(job)
        for unit in shape.units(gw, job):
            if not unit.active or unit.spool_name in pending or unit.slurm_id is None:
                continue
            said = live.get(unit.slurm_id)
            if said is not None and state_from_slurm(said.slurm_state) in ACTIVE:
                release_requeue_delay(gw, job, unit, said)
                shape.follow(gw, job, unit, said)
            else:
                gone.append((job, unit))
    if not gone:
        return
    accounting = final_records(gw, (unit.slurm_id or "" for _job, unit in gone))
    now = time.time()
    for job, unit in gone:
        job = gw.jobs.get(job.id)   # fresh: a unit before it may have moved the job
        final = accounting.get(unit.slurm_id or "") or live.get(unit.slurm_id or "")
        if final is not None and state_from_slurm(final.slurm_state) in ACTIVE:
            shape_of(job).follow(gw, job, unit, final)
            continue
        memory_killed = (final is not None and final.exit_code == 128 + 9
                         and killed_for_memory(unit.log))
        end = decide_end(None, final, now, memory_killed=memory_killed)
        if end.final:
            assert final is not None
            facts = {"exit_code": final.exit_code, "node": final.node,
                     "started": final.start, "ended": final.end}
            shape_of(job).end_unit(gw, job, unit, end, None, facts)
        elif final is None:
            shape_of(job).lost(gw, job, unit, end.reason)


def _record_runs(gw: Gateway, queue: dict[str, SlurmJobState]) -> bool:
    """Record the runs of rendered scripts (plain sbatch) that the queue shows for the
    first time; returns whether there were any."""
    from gateway.jobs.identity import parse_render_comment

    recorded = False
    for said in queue.values():
        render_id = parse_render_comment(said.comment, gw.home_id)
        if render_id is None or said.array_task:
            continue
        state = state_from_slurm(said.slurm_state)
        job = gw.jobs.adopt_run(render_id, said.slurm_job_id,
                                state if state in ("PENDING", "RUNNING") else "PENDING",
                                gw.layout.jobs)
        recorded = recorded or (job is not None and job.active)
    return recorded


def _mark_unknown(gw: Gateway, jobs: list[Job], exc: SlurmUnavailable) -> None:
    since = time.strftime("%H:%M:%S")
    for job in jobs:
        if job.state in ("PENDING", "RUNNING"):
            gw.jobs.transition(job.id, [job.state], "UNKNOWN",
                               reason=f"Slurm unreachable since {since}; last known state "
                                      f"{job.state} ({exc.stderr or exc})"[:500])


# What slurmstepd writes to the job's output when it kills a step over its memory limit
# (jobacct_gather's OverMemoryKill, where there are no cgroups to report OUT_OF_MEMORY).
MEMORY_KILL_LINE = b"Exceeded job memory limit"


def killed_for_memory(log_path: Path | None) -> bool:
    """Whether the end of a unit's log says Slurm killed it for memory."""
    if log_path is None:
        return False
    try:
        with log_path.open("rb") as log:
            log.seek(max(0, log.seek(0, 2) - 8192))
            return MEMORY_KILL_LINE in log.read()
    except OSError:
        return False


def _adopt(gw: Gateway, submitting: list[Job], queue: dict[str, SlurmJobState]) -> None:
    """Give jobs still SUBMITTING their Slurm job, found by the identity in its comment."""
    by_identity = _by_identity(gw, queue.values())
    overdue = []
    for job in submitting:
        found = by_identity.get(job.id)
        if found is not None:
            _take(gw, job, found)
        elif time.time() - job.submitted > SUBMITTING_GRACE_SECONDS:
            overdue.append(job)
    if not overdue:
        return
    recorded = _by_identity(gw, gw.slurm.query_since(min(j.submitted for j in overdue) - 60)
                            .values())
    for job in overdue:
        found = recorded.get(job.id)
        if found is not None:
            _take(gw, job, found)
        else:
            gw.jobs.transition(job.id, ["SUBMITTING"], "FAILED", ended=time.time(),
                               reason="the submission was interrupted before Slurm took the "
                                      "job (Slurm has no job with its identity)")


def _by_identity(gw: Gateway, states: Iterable[SlurmJobState]) -> dict[int, SlurmJobState]:
    found = {}
    for state in states:
        job_id = parse_identity_comment(state.comment, gw.home_id)
        if job_id is not None:
            found[job_id] = state
    return found


def _take(gw: Gateway, job: Job, found: SlurmJobState) -> None:
    """Adopt: record the Slurm id (once), then follow or settle its units like any job's."""
    state = state_from_slurm(found.slurm_state)
    slurm_id = shape_of(job).adopted_id(found)
    if gw.jobs.attach_slurm_id(job.id, slurm_id,
                               state if state in ("PENDING", "RUNNING") else "PENDING"):
        _follow_units(gw, [gw.jobs.get(job.id)], {found.array_task or found.slurm_job_id:
                                                  found})
