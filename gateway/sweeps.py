"""Sweeps: one recipe run over every combination of parameter values, as ONE Slurm job
array (gateway/kinds/sweep.py); each task's /model becomes its own model version."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hpc_gateway.gateway.context import Gateway
from hpc_gateway.gateway.errors import InvalidInput
from hpc_gateway.gateway.job_model import Job
from hpc_gateway.gateway.submit import JobRequest, submit_job


def submit_sweep(gw: Gateway, request: JobRequest, tasks: list[dict[str, str]],
                 commands: list[tuple[str, ...]], max_parallel: int | None) -> Job:
    """Submit one array job of ``len(tasks)`` tasks; task i runs ``commands[i]`` and
    records ``tasks[i]`` (its values) in its model version's lineage."""
    if request.kind != "training":
        raise InvalidInput("only command templates can be swept (not --notebook ones)")
    if request.extra.get("sbatch_template"):
        raise InvalidInput("a sweep runs with the gateway's array template: no --template")
    if len(tasks) != len(commands) or not tasks:
        raise InvalidInput("a sweep needs at least one task")
    extra: dict[str, Any] = {**request.extra, "tasks": tasks,
                             "commands": [list(c) for c in commands],
                             "max_parallel": max_parallel}
    job = submit_job(gw, replace(request, kind="sweep", extra=extra))
    if job.slurm_job_id is not None:
        gw.jobs.ensure_tasks(job.id, tasks)
    return job


def sweep_summary(gw: Gateway, job: Job) -> dict[str, Any]:
    """Counts of the tasks by state, and each task (for `gw job show`)."""
    if job.kind != "sweep":
        return {}
    gw.jobs.ensure_tasks(job.id, list(job.spec.extra.get("tasks") or []))
    tasks = gw.jobs.tasks(job.id)
    counts: dict[str, int] = {}
    for task in tasks:
        counts[task.state] = counts.get(task.state, 0) + 1
    return {"task_count": len(tasks), "task_states": counts,
            "tasks": [t.as_dict() for t in tasks]}
