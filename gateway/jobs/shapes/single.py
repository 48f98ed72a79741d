"""The ``single`` shape: one task on one node; the job is its only unit, and the unit's
end is the job's end (the kind's end handler, then the job's final state)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.common.errors import InvalidInput
from gateway.jobs.values import Unit

if TYPE_CHECKING:
    from containers.runtime import ContainerScript, Shell
    from gateway.common.specs import Resources
    from gateway.context import Gateway
    from gateway.jobs.end import EndDecision
    from gateway.jobs.model import Job
    from gateway.jobs.request import JobRequest
    from gateway.jobs.values import SubmitContext
    from gateway.slurm.adapter import SlurmJobState
    from spool.format import SpoolRecord


class SingleShape:
    """The ``single`` shape."""

    name = "single"
    macros = "sbatch/shapes/single.sh.j2"
    reruns_as = "single"
    resumes = True      # each unit requeued on its own (sbatch/resume.sh.j2)
    renders_as: str | None = "rendered"
    node_env: tuple[tuple[str, str], ...] = ()
    passed_prefixes: tuple[str, ...] = ()

    def label(self, kind: str) -> str:
        """The kind alone."""
        return kind

    def check_request(self, request: JobRequest) -> None:
        """Every kind runs as one task."""
        one_rank(request, "a one-task job")

    def sbatch_options(self, job: Job, resources: Resources) -> list[tuple[str, object]]:
        """Its output in the job's directory; one node, one task."""
        from gateway.common.quoting import slurm_filename

        return [("output", slurm_filename(job.job_dir) + "/slurm-%j.out"),
                ("nodes", 1), ("ntasks", 1)]

    def prepare(self, ctx: SubmitContext) -> None:
        """Nothing beyond the kind's job directory: it is the unit's."""

    def unit_dir(self, ctx: SubmitContext) -> Path | Shell:
        """The job's directory."""
        return ctx.job.job_dir

    def container_command(self, ctx: SubmitContext) -> tuple[str | Shell, ...]:
        """The recorded command."""
        return tuple(ctx.job.spec.command)

    def template_values(self, ctx: SubmitContext) -> dict[str, Any]:
        """The job's directory, where its load samples and attempts are written."""
        return {"job_dir": str(ctx.job.job_dir)}

    def launch(self, ctx: SubmitContext, script: ContainerScript) -> ContainerScript:
        """Once, on the job's node."""
        return script

    def units(self, gw: Gateway, job: Job) -> list[Unit]:
        """The job itself."""
        return [Unit(index=None, directory=job.job_dir, slurm_id=job.slurm_job_id,
                     state=job.state, reason=job.reason, spool_name=f"{job.id}.json",
                     model_version_id=job.model_version_id, model_ref=job.model_ref)]

    def unit(self, gw: Gateway, job: Job, index: int | None) -> Unit:
        """The job itself; a task index is refused."""
        if index is not None:
            raise InvalidInput(f"job {job.id} is not a sweep: it has no tasks")
        return self.units(gw, job)[0]

    def load_units(self, gw: Gateway, job: Job, index: int | None) -> list[Unit]:
        """Unit ``index`` alone."""
        return [self.unit(gw, job, index)]

    def unit_of_record(self, gw: Gateway, job: Job, record: SpoolRecord) -> Unit | str:
        """The job, for a record that names no task."""
        if record.task is not None:
            return f"names task {record.task} of job {job.id}, which is not a sweep"
        return self.units(gw, job)[0]

    def follow(self, gw: Gateway, job: Job, unit: Unit, live: SlurmJobState) -> None:
        """Record Slurm's state, node, pending reason and start time."""
        from gateway.jobs.model import state_from_slurm

        state = state_from_slurm(live.slurm_state)
        reason = live.reason if state == "PENDING" else ""
        started = live.start if state == "RUNNING" else None
        if state == job.state:
            if (live.node, reason) != (job.node, job.reason) or (started and not job.started):
                gw.jobs.note(job.id, node=live.node, reason=reason,
                             started=started or job.started)
            return
        gw.jobs.transition(job.id, [job.state], state, node=live.node, reason=reason,
                           started=started or job.started)

    def end_unit(self, gw: Gateway, job: Job, unit: Unit, end: EndDecision,
                 record: SpoolRecord | None, facts: dict[str, Any]) -> bool:
        """The kind's end handler, then the job's final state (compare-and-set)."""
        from gateway.jobs.end import finish_job

        assert end.state is not None
        facts = {**facts, "node": facts.get("node") or job.node}
        if record is None:  # from Slurm alone: the start the job was seen with counts
            facts["started"] = job.started or facts.get("started")
        return finish_job(gw, job, end.state, end.reason, record, unit, **facts)

    def lost(self, gw: Gateway, job: Job, unit: Unit, why: str) -> None:
        """The job becomes UNKNOWN (never a guess)."""
        if job.state != "UNKNOWN":
            gw.jobs.transition(job.id, [job.state], "UNKNOWN",
                               reason=f"Slurm no longer lists job {job.slurm_job_id} and its "
                                      "accounting has no record: the final state is unknown")

    def adopted_id(self, found: SlurmJobState) -> str:
        """The job's own Slurm id."""
        return found.slurm_job_id

    def summary(self, gw: Gateway, job: Job) -> dict[str, Any]:
        """Nothing: the job's own fields say it all."""
        return {}

    def outputs(self, gw: Gateway, job: Job) -> list[tuple[Path, str]]:
        """The job's /code."""
        return [(job.job_dir / "code", "code")]

    def rerun_extra(self, job: Job, command: tuple[str, ...]) -> dict[str, Any]:
        """Nothing of the shape's own."""
        return {}


def one_rank(request: JobRequest, what: str) -> None:
    """Refuse several nodes or tasks for a shape that runs one task per unit."""
    if request.resources.tasks > 1:
        raise InvalidInput(f"{what} runs on one node as one task: --nodes and "
                           "--tasks-per-node above 1 need `gw job submit`")
