"""Reading and acting on recorded jobs: show, list, cancel, outputs.

Submission is gateway/submit.py; state changes after submission come from the spool
(spool/ingest.py) and from Slurm (spool/reconcile.py), all through the job repository.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpc_gateway.gateway.context import Gateway
from hpc_gateway.gateway.errors import InvalidInput, NotFound
from hpc_gateway.gateway.job_states import STATES, TERMINAL

if TYPE_CHECKING:
    from hpc_gateway.gateway.job_model import Job


def get_job(gw: Gateway, job_id: int) -> Job:
    """One job by gateway id."""
    return gw.jobs.get(job_id)


def list_jobs(gw: Gateway, states: tuple[str, ...] = (), limit: int | None = None
              ) -> list[dict[str, Any]]:
    """Jobs, newest first, optionally filtered by state (names checked)."""
    return gw.jobs.summaries(check_listing(states, limit), limit)


def check_listing(states: tuple[str, ...], limit: int | None) -> tuple[str, ...]:
    """The states named (upper case), checked; a limit below 1 is refused."""
    wanted = tuple(s.upper() for s in states)
    unknown = [s for s in wanted if s not in STATES]
    if unknown:
        raise InvalidInput(f"unknown state {unknown[0]!r}; states: {', '.join(STATES)}")
    if limit is not None and limit < 1:
        raise InvalidInput(f"invalid --limit {limit}: at least 1")
    return wanted


def cancel_job(gw: Gateway, job_id: int) -> Job:
    """``scancel`` a job that is still active."""
    job = gw.jobs.get(job_id)
    if job.state in TERMINAL:
        raise InvalidInput(f"job {job_id} is already {job.state}")
    if job.slurm_job_id is None:
        raise InvalidInput(f"job {job_id} is still being submitted (Slurm has not given it an "
                           "id yet); cancel it once `gw job show` gives its Slurm id")
    gw.slurm.cancel(job.slurm_job_id)
    return job


def log_path(job: Job, task: int | None = None) -> Path:
    """The job's Slurm output file (for a sweep, its task ``task``'s: 0 by default)."""
    if job.kind == "sweep":
        count = len(job.spec.extra.get("tasks") or [])
        index = 0 if task is None else task
        if not 0 <= index < count:
            raise InvalidInput(f"job {job.id} is a sweep of tasks 0 to {count - 1}; no task "
                               f"{index}")
        if job.slurm_job_id is None:
            raise NotFound(f"job {job.id} has no log yet")
        return job.job_dir / "tasks" / str(index) / f"slurm-{job.slurm_job_id}_{index}.out"
    if task is not None:
        raise InvalidInput(f"job {job.id} is not a sweep: it has no tasks")
    if job.log_path is None:
        raise NotFound(f"job {job.id} has no log yet")
    return job.log_path


def write_outputs(job: Job, out: Path) -> int:
    """Pack what the job left in /code and its logs into ``out`` (.tar.gz); returns bytes."""
    import tarfile

    from hpc_gateway.gateway.models import check_output_file

    check_output_file(out)
    if not (job.job_dir / "code").exists():
        raise NotFound(f"job {job.id} has no outputs (its directory {job.job_dir} is gone)")
    if job.state not in TERMINAL:
        raise InvalidInput(f"job {job.id} is {job.state}; outputs are ready when it ends")
    tmp = out.with_name(f".{out.name}.partial")
    try:
        with tarfile.open(tmp, "w:gz") as tar:
            if job.kind == "sweep":  # each task's own /code and log
                for task in sorted((job.job_dir / "tasks").iterdir(),
                                   key=lambda p: int(p.name) if p.name.isdigit() else -1):
                    if (task / "code").is_dir():
                        tar.add(task / "code", arcname=f"tasks/{task.name}/code")
                    for log in sorted(task.glob("slurm-*.out")):
                        tar.add(log, arcname=f"logs/{log.name}")
            else:
                tar.add(job.job_dir / "code", arcname="code")
            for log in sorted(job.job_dir.glob("slurm-*.out")):
                tar.add(log, arcname=f"logs/{log.name}")
            tar.add(job.script_path, arcname=f"logs/{job.script_path.name}")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out.stat().st_size
