"""A sweep: one Slurm job array, a task per combination of parameter values.

Every task runs the training recipe with its own command (the template's placeholders
filled with its values), its own private copy of /code (made on the node from the job's
one copy) and its own /model, which becomes its own model version with its values in the
lineage. Each task writes its own spool file (``<job>.<task>.json``); spool/tasks.py
finishes tasks, and the job when its last task has ended. A failed task makes no
version and stops nothing else.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from hpc_gateway.gateway.kinds.base import JobEnd, SubmitContext

if TYPE_CHECKING:
    from hpc_gateway.containers.runtime import Mount
    from hpc_gateway.gateway.context import Gateway
    from hpc_gateway.gateway.job_model import Job

TASK_DIR = '"$gw_task_dir"'     # set by the sweep template's prologue, on the node


def task_dir(job: Job, task: int):
    """Where a task keeps its command, code copy, /model and log."""
    return job.job_dir / "tasks" / str(task)


class SweepKind:
    """The ``sweep`` kind."""

    name = "sweep"
    template = "sbatch/sweep.sh.j2"

    node_env: tuple[tuple[str, str], ...] = (("GW_TASK", "GW_TASK"),)

    def prepare(self, ctx: SubmitContext) -> None:
        """``code/``: the one copy tasks copy from; ``tasks/<i>/``: its command (argv,
        NUL-separated) and an empty ``model/``."""
        from hpc_gateway.gateway.trees import copy_writable

        job = ctx.job
        if ctx.algo is not None:
            copy_writable(ctx.algo.path, job.job_dir / "code")
        else:
            (job.job_dir / "code").mkdir(mode=0o700)
        (job.job_dir / "tasks").mkdir(mode=0o700)
        for index, argv in enumerate(job.spec.extra["commands"]):
            directory = task_dir(job, index)
            directory.mkdir(mode=0o700)
            (directory / "model").mkdir(mode=0o700)
            fd = os.open(directory / "argv", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(b"".join(arg.encode() + b"\0" for arg in argv))

    def mounts(self, ctx: SubmitContext) -> list[Mount]:
        """The task's /code and /model (paths known on the node), /dataset read-only."""
        from hpc_gateway.gateway.kinds.layout import node_mounts

        return node_mounts(ctx, TASK_DIR)

    def container_command(self, ctx: SubmitContext) -> tuple[str, ...]:
        """The task's own command, read on the node from its argv file."""
        from hpc_gateway.containers.runtime import Shell

        return (Shell('"${gw_task_argv[@]}"'),)

    def template_values(self, ctx: SubmitContext) -> dict[str, Any]:
        """The array (``0-N`` and ``%max``), where tasks live, their log pattern."""
        from hpc_gateway.gateway.render import sbatch_flag
        from hpc_gateway.gateway.submit import slurm_filename

        job = ctx.job
        count = len(job.spec.extra["commands"])
        cap = job.spec.extra.get("max_parallel")
        # The task's log replaces the job's (a later #SBATCH option wins).
        log = slurm_filename(job.job_dir / "tasks") + "/%a/slurm-%A_%a.out"
        return {"array": True,
                "array_flag": sbatch_flag("array", f"0-{count - 1}" + (f"%{int(cap)}"
                                                                       if cap else "")),
                "output_flag": sbatch_flag("output", log),
                "tasks_dir": str(job.job_dir / "tasks"), "code_dir": str(job.job_dir / "code")}

    def on_end(self, gw: Gateway, job: Job, end: JobEnd) -> str:
        """The tasks finished themselves (spool/tasks.py): say how they ended."""
        tasks = gw.jobs.tasks(job.id)
        done = sum(1 for t in tasks if t.state == "COMPLETED")
        return f"{done} of {len(tasks)} tasks completed"
