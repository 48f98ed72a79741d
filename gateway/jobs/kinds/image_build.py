"""An image build: the SIF of an imported or pulled image made by a Slurm job.

The image is recorded BUILDING with this job as its build (gateway/stores/images.py);
the job runs the converter (containers/build_job.py) on the node with no container, its
log the build's progress. When it ends, the image becomes READY with its SIF, or FAILED
with the converter's error; jobs that were waiting for it (a Slurm dependency on this
job: gateway/jobs/submit.py) end FAILED with that error, never running.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.common.errors import InvalidInput
from gateway.jobs.values import JobEnd

if TYPE_CHECKING:
    from containers.runtime import Mount, Shell
    from gateway.context import Gateway
    from gateway.jobs.model import Job
    from gateway.jobs.request import JobRequest
    from gateway.jobs.values import SubmitContext, Unit


class ImageBuildKind:
    """The ``image_build`` kind. Its request's ``extra["build"]`` is the node's build
    request (containers/build_job.py); its command runs that request."""

    name = "image_build"
    template = "sbatch/image_build.sh.j2"
    node_env: tuple[tuple[str, str], ...] = ()
    arrays, renders, serves, gangs = False, False, False, False
    resumes = False
    runs_image = False   # it makes the image's SIF

    def prepare(self, ctx: SubmitContext) -> None:
        """The build request, beside the script."""
        from containers.build_job import REQUEST_FILE
        from gateway.common.atomic import write_atomic

        build = ctx.job.spec.extra.get("build")
        if not isinstance(build, dict):
            raise InvalidInput("an image build job needs its build request (gw image import)")
        write_atomic(ctx.job.job_dir / REQUEST_FILE, json.dumps(build, indent=1) + "\n")

    def mounts(self, ctx: SubmitContext, unit_dir: Path | Shell) -> list[Mount]:
        """None: the build runs no container."""
        return []

    def template_values(self, ctx: SubmitContext) -> dict[str, Any]:
        """The converter's command line, quoted."""
        from gateway.common.quoting import shell_line

        return {"build_command": shell_line(ctx.job.spec.command)}

    def recipe(self, job: Job, options: dict[str, Any], command: tuple[str, ...]
               ) -> tuple[dict[str, Any], tuple[str, ...]]:
        """None: a build is asked for by importing the image again."""
        raise InvalidInput(f"job {job.id} builds the image {job.spec.image}: it is not run "
                           "again or saved as a template; import or pull the image again")

    def rerun_request(self, job: Job, request: JobRequest) -> JobRequest:
        """Never reached: :meth:`recipe` refuses."""
        raise InvalidInput(f"job {job.id} builds an image: import or pull it again")

    def on_end(self, gw: Gateway, job: Job, unit: Unit, end: JobEnd) -> str:
        """The image becomes READY with the SIF the node made, or FAILED with its error;
        the jobs waiting for it fail with that error. Repeatable: a second call finds
        the image already decided, and the waiting jobs already ended."""
        from containers.build_job import ERROR_FILE, RESULT_FILE
        from gateway.stores.images import record_build_end

        if job.image_id is None:
            return "its image was removed"
        result = _read_json(job.job_dir / RESULT_FILE) if end.succeeded else None
        if result is not None:
            record_build_end(gw, job.image_id, job.id, result=result)
            return ""
        error = _read_text(job.job_dir / ERROR_FILE) or _ended_without_error(end)
        name = record_build_end(gw, job.image_id, job.id, reason=error)
        if name is None:   # a newer build owns the image now
            return "a later build of the image replaced this one"
        fail_waiting_jobs(gw, job, f"image {name} failed to build: {error}")
        return f"the image failed to build: {error}"


def _ended_without_error(end: JobEnd) -> str:
    if end.state == "COMPLETED":
        return "the build job ended without recording its SIF"
    return f"the build job ended {end.state}"


def fail_waiting_jobs(gw: Gateway, build: Job, reason: str) -> list[int]:
    """End every unfinished job of ``build``'s image but the build, each unit through its
    shape as any end is recorded: cancelled in Slurm (where its dependency did not already
    end it), then FAILED with ``reason``. Returns the jobs ended."""
    import contextlib
    import time

    from gateway.common.errors import SlurmError
    from gateway.jobs.end import EndDecision
    from gateway.jobs.shapes import shape_of

    assert build.image_id is not None
    ended = []
    for job_id in gw.jobs.active_using("image_id", build.image_id):
        if job_id == build.id:
            continue
        waiting = gw.jobs.get(job_id)
        if waiting.slurm_job_id:
            with contextlib.suppress(SlurmError):  # gone already: its dependency failed
                gw.slurm.cancel(waiting.slurm_job_id)
        shape = shape_of(waiting)
        for unit in shape.units(gw, waiting):
            if unit.active and waiting.active:
                shape.end_unit(gw, waiting, unit, EndDecision("FAILED", reason), None,
                               {"ended": time.time()})
                waiting = gw.jobs.get(job_id)
        ended.append(job_id)
    return ended


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _read_text(path: Path) -> str:
    try:
        return " ".join(path.read_text(errors="replace").split())[:2000]
    except OSError:
        return ""
