"""Sweeps: one recipe run over every combination of parameter values, as ONE Slurm job
array: a job of the array shape (gateway/jobs/shapes/array.py); each task's /model becomes its
own model version."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from gateway.context import Gateway
from gateway.jobs.model import Job
from gateway.jobs.request import JobRequest
from gateway.jobs.submit import submit_job


def submit_sweep(gw: Gateway, request: JobRequest, tasks: list[dict[str, str]],
                 commands: list[tuple[str, ...]], max_parallel: int | None) -> Job:
    """Submit one array job of ``len(tasks)`` tasks; task i runs ``commands[i]`` and
    records ``tasks[i]`` (its values) in its model version's lineage."""
    extra: dict[str, Any] = {**request.extra, "tasks": tasks,
                             "commands": [list(c) for c in commands],
                             "max_parallel": max_parallel}
    return submit_job(gw, replace(request, shape="array", extra=extra))
