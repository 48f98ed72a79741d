"""The ``array`` shape: one Slurm job array of independent tasks (what a sweep is).

Every task runs the job's kind with its own command (a sweep's placeholders filled with
its values), its own private copy of /code (made on the node from the job's one copy) and
its own /model, which becomes its own model version with its values in the lineage. Each
task writes its own spool file (``<job>.<task>.json``) and ends by itself through the one
end decision (gateway/jobs/end.py); a failed task makes no version and stops nothing else. The
job follows its tasks and ends with its last one: COMPLETED only if every task completed.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.common.errors import InvalidInput
from gateway.jobs.shapes.single import one_rank
from gateway.jobs.states import ACTIVE
from gateway.jobs.values import Unit

if TYPE_CHECKING:
    from containers.runtime import ContainerScript, Shell
    from gateway.common.specs import Resources
    from gateway.context import Gateway
    from gateway.jobs.end import EndDecision
    from gateway.jobs.model import Job, JobTask
    from gateway.jobs.request import JobRequest
    from gateway.jobs.values import SubmitContext
    from gateway.slurm.adapter import SlurmJobState
    from spool.format import SpoolRecord

UNIT_DIR = '"$gw_unit_dir"'     # set by the shape's prologue, on the node
# What the shape keeps in the job's spec (extra): each task's values and command, the cap.
EXTRA_KEYS = ("tasks", "commands", "max_parallel")


class ArrayShape:
    """The ``array`` shape."""

    name = "array"
    macros = "sbatch/shapes/array.sh.j2"
    reruns_as = "array"
    resumes = True      # each unit requeued on its own (sbatch/resume.sh.j2)
    renders_as: str | None = None
    node_env: tuple[tuple[str, str], ...] = (("GW_TASK", "GW_TASK"),)
    passed_prefixes: tuple[str, ...] = ()

    def label(self, kind: str) -> str:
        """The kind, and that it is an array."""
        return f"{kind} array"

    def check_request(self, request: JobRequest) -> None:
        """A sweep of command jobs with the gateway's template, of one task at least."""
        from gateway.jobs.kinds import get_kind

        if not get_kind(request.kind).arrays:
            raise InvalidInput("only command templates can be swept (not --notebook ones)")
        if request.extra.get("sbatch_template"):
            raise InvalidInput("a sweep runs with the gateway's array template: no --template")
        tasks, commands = request.extra.get("tasks"), request.extra.get("commands")
        if not isinstance(tasks, list) or not isinstance(commands, list) or not tasks \
                or len(tasks) != len(commands):
            raise InvalidInput("a sweep needs at least one task")
        one_rank(request, "each task of a sweep")

    def sbatch_options(self, job: Job, resources: Resources) -> list[tuple[str, object]]:
        """``--array=0-N[%cap]``; each task's output in its own directory."""
        from gateway.common.quoting import slurm_filename

        count = len(job.spec.extra["commands"])
        cap = job.spec.extra.get("max_parallel")
        return [("output", slurm_filename(job.layout.units) + "/%a/slurm-%A_%a.out"),
                ("nodes", 1), ("ntasks", 1),
                ("array", f"0-{count - 1}" + (f"%{int(cap)}" if cap else ""))]

    def prepare(self, ctx: SubmitContext) -> None:
        """``tasks/<i>/``: its command (argv, NUL-separated) and an empty ``model/``; the
        job's ``code/`` is the one copy tasks copy from (the job has no /model of its own)."""
        layout = ctx.job.layout
        if layout.model.is_dir():
            layout.model.rmdir()
        layout.units.mkdir(mode=0o700)
        for index, argv in enumerate(ctx.job.spec.extra["commands"]):
            directory = layout.unit_dir(index)
            directory.mkdir(mode=0o700)
            (directory / "model").mkdir(mode=0o700)
            fd = os.open(directory / "argv", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(b"".join(arg.encode() + b"\0" for arg in argv))

    def unit_dir(self, ctx: SubmitContext) -> Path | Shell:
        """The task's directory (known on the node)."""
        from containers.runtime import Shell

        return Shell(UNIT_DIR)

    def container_command(self, ctx: SubmitContext) -> tuple[str | Shell, ...]:
        """The task's own command, read on the node from its argv file."""
        from containers.runtime import Shell

        return (Shell('"${gw_task_argv[@]}"'),)

    def template_values(self, ctx: SubmitContext) -> dict[str, Any]:
        """Where tasks live and what they copy their code from."""
        return {"units_dir": str(ctx.job.layout.units), "code_dir": str(ctx.job.layout.code)}

    def launch(self, ctx: SubmitContext, script: ContainerScript) -> ContainerScript:
        """Once, on the job's node."""
        return script

    # ---- a recorded job ------------------------------------------------------------------
    def _tasks(self, gw: Gateway, job: Job) -> list[JobTask]:
        gw.jobs.ensure_tasks(job.id, list(job.spec.extra.get("tasks") or []))
        return gw.jobs.tasks(job.id)

    def _unit(self, job: Job, task: JobTask) -> Unit:
        return Unit(index=task.task, directory=job.layout.unit_dir(task.task),
                    slurm_id=f"{job.slurm_job_id}_{task.task}" if job.slurm_job_id else None,
                    state=task.state, reason=task.reason,
                    spool_name=f"{job.id}.{task.task}.json",
                    lineage={"params": task.params, "task": task.task},
                    model_version_id=task.model_version_id, model_ref=task.model_ref)

    def units(self, gw: Gateway, job: Job) -> list[Unit]:
        """Its tasks, by index."""
        return [self._unit(job, task) for task in self._tasks(gw, job)]

    def unit(self, gw: Gateway, job: Job, index: int | None) -> Unit:
        """Task ``index`` (0 by default)."""
        units = self.units(gw, job)
        wanted = 0 if index is None else index
        if not 0 <= wanted < len(units):
            raise InvalidInput(f"job {job.id} is a sweep of tasks 0 to {len(units) - 1}; no "
                               f"task {wanted}")
        return units[wanted]

    def load_units(self, gw: Gateway, job: Job, index: int | None) -> list[Unit]:
        """Unit ``index`` alone."""
        return [self.unit(gw, job, index)]

    def unit_of_record(self, gw: Gateway, job: Job, record: SpoolRecord) -> Unit | str:
        """The task the record names."""
        for unit in self.units(gw, job):
            if unit.index == record.task:
                return unit
        return f"names task {record.task} of job {job.id}, which has no such task"

    def follow(self, gw: Gateway, job: Job, unit: Unit, live: SlurmJobState) -> None:
        """The task's state from the queue; the job follows its tasks."""
        from gateway.jobs.model import state_from_slurm

        now = state_from_slurm(live.slurm_state)
        if unit.index is not None and now != unit.state:
            gw.jobs.task_transition(job.id, unit.index, [unit.state], now, node=live.node,
                                    started=live.start)
        self._follow_tasks(gw, gw.jobs.get(job.id))

    def end_unit(self, gw: Gateway, job: Job, unit: Unit, end: EndDecision,
                 record: SpoolRecord | None, facts: dict[str, Any]) -> bool:
        """The kind's end handler for the task (its own model version), the task's final
        state; the job's end when no task is left."""
        from gateway.jobs.kinds import get_kind
        from gateway.jobs.values import JobEnd

        assert end.state is not None and unit.index is not None
        if unit.active:
            note = get_kind(job.kind).on_end(gw, job, unit, JobEnd(end.state, record))
            reason = "; ".join(p for p in (end.reason, note) if p)[:1000]
            gw.jobs.task_transition(job.id, unit.index, ACTIVE, end.state, reason=reason,
                                    **facts)
        return self._follow_tasks(gw, gw.jobs.get(job.id))

    def lost(self, gw: Gateway, job: Job, unit: Unit, why: str) -> None:
        """Not in accounting yet (an array not split into tasks yet): ask again later."""

    def adopted_id(self, found: SlurmJobState) -> str:
        """The array's id (a task of it was found)."""
        return found.base_id

    def _follow_tasks(self, gw: Gateway, job: Job) -> bool:
        """The job RUNNING or PENDING while a task is unfinished; finished with a summary
        once none is. Returns whether this call finished it."""
        if not job.active:
            return False
        tasks = self._tasks(gw, job)
        if any(t.active for t in tasks):
            running = any(t.state == "RUNNING" or not t.active for t in tasks)
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
        unfinished = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())
                               if s != "COMPLETED")
        summary = f"{counts.get('COMPLETED', 0)} of {len(tasks)} tasks completed"
        reason = "; ".join(p for p in (f"tasks: {unfinished}" if unfinished else "", summary)
                           if p)
        ends = [t.ended for t in tasks if t.ended]
        return gw.jobs.transition(job.id, ACTIVE, state, reason=reason[:1000],
                                  ended=max(ends) if ends else time.time())

    def summary(self, gw: Gateway, job: Job) -> dict[str, Any]:
        """Counts of the tasks by state, and each task."""
        tasks = self._tasks(gw, job)
        counts: dict[str, int] = {}
        for task in tasks:
            counts[task.state] = counts.get(task.state, 0) + 1
        return {"task_count": len(tasks), "task_states": counts,
                "tasks": [t.as_dict() for t in tasks]}

    def outputs(self, gw: Gateway, job: Job) -> list[tuple[Path, str]]:
        """Each task's own /code and log."""
        found: list[tuple[Path, str]] = []
        for unit in self.units(gw, job):
            if (unit.directory / "code").is_dir():
                found.append((unit.directory / "code", f"tasks/{unit.index}/code"))
            found.extend((log, f"logs/{log.name}")
                         for log in sorted(unit.directory.glob("slurm-*.out")))
        return found

    def rerun_extra(self, job: Job, command: tuple[str, ...]) -> dict[str, Any]:
        """The same tasks, commands and cap: a sweep is run again as a whole."""
        if command:
            raise InvalidInput("a sweep reruns with its own commands: no COMMAND after --")
        return {key: job.spec.extra.get(key) for key in EXTRA_KEYS}
