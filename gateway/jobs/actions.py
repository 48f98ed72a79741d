"""Reading and acting on recorded jobs: show, list, cancel, outputs.

Submission is gateway/jobs/submit.py; state changes after submission come from the spool
(spool/ingest.py) and from Slurm (spool/reconcile.py), all through the job repository.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.common.errors import InvalidInput, NotFound
from gateway.context import Gateway
from gateway.jobs.states import STATES, TERMINAL

if TYPE_CHECKING:
    from gateway.jobs.model import Job


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


def log_path(gw: Gateway, job: Job, task: int | None = None) -> Path:
    """The Slurm output file of the job's unit ``task`` (None: the one meant by default)."""
    from gateway.jobs.shapes import shape_of

    unit = shape_of(job).unit(gw, job, task)
    if unit.log is None:
        raise NotFound(f"job {job.id} has no log yet")
    return unit.log


def write_outputs(gw: Gateway, job: Job, out: Path) -> int:
    """Pack what the job left in /code and its logs into ``out`` (.tar.gz); returns bytes."""
    import tarfile

    from gateway.common.atomic import check_output_path, replacing
    from gateway.jobs.shapes import shape_of

    check_output_path(out, ".tar.gz file")
    if not job.layout.code.exists():
        raise NotFound(f"job {job.id} has no outputs (its directory {job.job_dir} is gone)")
    if job.state not in TERMINAL:
        raise InvalidInput(f"job {job.id} is {job.state}; outputs are ready when it ends")
    with replacing(out) as tmp, tarfile.open(tmp, "w:gz") as tar:
        for path, name in shape_of(job).outputs(gw, job):
            tar.add(path, arcname=name)
        for log in job.layout.logs():
            tar.add(log, arcname=f"logs/{log.name}")
        tar.add(job.layout.script, arcname=f"logs/{job.layout.script.name}")
    return out.stat().st_size
