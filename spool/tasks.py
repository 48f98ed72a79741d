"""The tasks of sweeps: each ends by itself, and the sweep ends with its last task.

A task's spool file (``<job>.<task>.json``) finishes the task: a clean exit 0 harvests its
/model into its own model version (its sweep values in the lineage, under ``params``), any
other end records why and makes no version. Tasks that write no spool file (cancelled,
over time, killed) get their state from one ``squeue`` for all jobs and one ``sacct`` per
array. Every change is a compare-and-set, so two ingesters, or an ingester and
reconciliation, finish each task once; when no task is left running the job is finished
with a summary (COMPLETED only if every task completed).
"""

from __future__ import annotations

import time
from pathlib import Path

from hpc_gateway.gateway.context import Gateway
from hpc_gateway.gateway.errors import SlurmError
from hpc_gateway.gateway.job_model import ACTIVE, Job, JobTask, state_from_slurm
from hpc_gateway.gateway.kinds.sweep import task_dir
from hpc_gateway.gateway.slurm.adapter import SlurmJobState, array_tasks
from hpc_gateway.spool.finish import failure_reason, finish_job
from hpc_gateway.spool.format import SpoolRecord
from hpc_gateway.spool.layout import set_aside
from hpc_gateway.spool.report import IngestReport

# A task Slurm calls COMPLETED gets this long for its spool file to show up.
SPOOL_GRACE_SECONDS = 60
# How long a task whose end was not clean waits for accounting before its spool file's
# own word is taken (as for jobs: spool/ingest.py).
ACCOUNTING_GRACE_SECONDS = 120


def base_slurm_id(slurm_id: str) -> str:
    """The id a job was submitted as (``1234`` for array task ``1234_5``)."""
    return slurm_id.split("_")[0]


def _tasks(gw: Gateway, job: Job) -> dict[int, JobTask]:
    gw.jobs.ensure_tasks(job.id, list(job.spec.extra.get("tasks") or []))
    return {t.task: t for t in gw.jobs.tasks(job.id)}


def ingest_task(gw: Gateway, path: Path, record: SpoolRecord, job: Job,
                report: IngestReport) -> None:
    """Finish one task from its spool file (then the sweep, if it was the last)."""
    from hpc_gateway.spool.ingest import warn

    task = _tasks(gw, job).get(record.task if record.task is not None else -1)
    if job.kind != "sweep" or task is None:
        problem = (f"names task {record.task} of job {job.id}, which "
                   + ("is not a sweep" if job.kind != "sweep" else "has no such task"))
        set_aside(path, "aside")
        report.put_aside.append(f"{path.name}: {problem}")
        warn(f"spool file {path.name} put aside in spool/aside/: {problem}")
        return
    if task.active:
        state, reason = _task_end(gw, job, task, record)
        if state is None:
            report.retry.append(f"{path.name}: Slurm has not recorded the task's end yet")
            return
        if gw.jobs.task_transition(job.id, task.task, ACTIVE, state, reason=reason[:1000],
                                   exit_code=record.exit_code, node=record.node,
                                   started=record.started, ended=record.ended):
            report.finished_tasks.append((job.id, task.task))
    set_aside(path, "done")
    if finish_sweep_if_done(gw, gw.jobs.get(job.id)):
        report.finished.append(job.id)


def _task_end(gw: Gateway, job: Job, task: JobTask, record: SpoolRecord
              ) -> tuple[str | None, str]:
    """The task's final state and reason (None: ask again later)."""
    if record.clean and record.exit_code == 0:
        return "COMPLETED", _harvest_task(gw, job, task, record)
    if record.clean and record.exit_code < 128:
        return "FAILED", failure_reason(record.exit_code)
    # A signal or an interrupted end: Slurm knows better (cancelled, timeout, memory).
    try:
        said = gw.slurm.query_array(job.slurm_job_id or "").get(
            f"{job.slurm_job_id}_{task.task}")
    except SlurmError:
        said = None
    slurm_state = state_from_slurm(said.slurm_state) if said else "UNKNOWN"
    old = record.ended is None or time.time() - record.ended > ACCOUNTING_GRACE_SECONDS
    if slurm_state in ACTIVE and (said is not None or not old):
        return None, ""  # Slurm still runs it, or has not written its end yet
    if slurm_state in ("CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL"):
        assert said is not None
        return slurm_state, f"Slurm: {said.slurm_state}"
    return "FAILED", failure_reason(record.exit_code)


def _harvest_task(gw: Gateway, job: Job, task: JobTask, record: SpoolRecord) -> str:
    from hpc_gateway.spool.harvest import harvest_tree

    incoming = gw.layout.kind_root("model") / job.model_name / \
        f".incoming-job{job.id}-task{task.task}"
    return harvest_tree(gw, job, record, source=task_dir(job, task.task) / "model",
                        incoming=incoming, linked_version_id=task.model_version_id,
                        link=lambda version_id: gw.jobs.link_task_model(job.id, task.task,
                                                                        version_id),
                        lineage_extra={"params": task.params, "task": task.task,
                                       "slurm_job_id": record.slurm_job_id})


def finish_sweep_if_done(gw: Gateway, job: Job) -> bool:
    """Finish the sweep once no task is unfinished (returns whether this call did); until
    then it follows its tasks."""
    if not job.active:
        return False
    tasks = list(_tasks(gw, job).values())
    if any(t.active for t in tasks):
        running = any(t.state == "RUNNING" for t in tasks) or any(
            not t.active for t in tasks)
        wanted = "RUNNING" if running else "PENDING"
        if job.state != wanted and job.state in ("PENDING", "RUNNING", "UNKNOWN"):
            gw.jobs.transition(job.id, [job.state], wanted, reason="")
        return False
    counts: dict[str, int] = {}
    for task in tasks:
        counts[task.state] = counts.get(task.state, 0) + 1
    if counts.get("COMPLETED", 0) == len(tasks):
        state = "COMPLETED"
    elif set(counts) <= {"COMPLETED", "CANCELLED"}:
        state = "CANCELLED"
    else:
        state = "FAILED"
    unfinished = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()) if s != "COMPLETED")
    ends = [t.ended for t in tasks if t.ended]
    return finish_job(gw, job, state, f"tasks: {unfinished}" if unfinished else "", None,
                      ended=max(ends) if ends else time.time())


def reconcile_sweep(gw: Gateway, job: Job, queue: dict[str, SlurmJobState]) -> None:
    """Bring a sweep's unfinished tasks up to date from the queue and, for tasks that left
    it without a spool file, from accounting (one ``sacct`` for the array)."""
    from hpc_gateway.spool.layout import pending_spool_files

    array = job.slurm_job_id or ""
    live = array_tasks(s for s in queue.values() if s.base_id == array)
    pending = {p.name for p in pending_spool_files(gw.layout.spool)}
    gone = []
    for task in _tasks(gw, job).values():
        if not task.active or f"{job.id}.{task.task}.json" in pending:
            continue
        said = live.get(f"{array}_{task.task}")
        if said is not None and state_from_slurm(said.slurm_state) in ACTIVE:
            now = state_from_slurm(said.slurm_state)
            if now != task.state:
                gw.jobs.task_transition(job.id, task.task, [task.state], now,
                                        node=said.node, started=said.start)
        else:
            gone.append(task)
    if gone:
        accounting = gw.slurm.query_array(array)
        for task in gone:
            _settle_task(gw, job, task, accounting.get(f"{array}_{task.task}"))
    finish_sweep_if_done(gw, gw.jobs.get(job.id))


def _settle_task(gw: Gateway, job: Job, task: JobTask, final: SlurmJobState | None) -> None:
    """A task Slurm no longer runs, and whose spool file has not come."""
    if final is None:
        return  # not in accounting yet (an array not split into tasks yet)
    state = state_from_slurm(final.slurm_state)
    if state in ACTIVE:
        return
    facts = {"exit_code": final.exit_code, "node": final.node, "started": final.start,
             "ended": final.end}
    if state == "COMPLETED":
        if final.end is not None and time.time() - final.end < SPOOL_GRACE_SECONDS:
            return
        gw.jobs.task_transition(job.id, task.task, ACTIVE, "FAILED",
                                reason="Slurm says it completed, but the task wrote no end "
                                       "state (spool file)", **facts)
        return
    gw.jobs.task_transition(job.id, task.task, ACTIVE, state,
                            reason=f"Slurm: {final.slurm_state}", **facts)
