"""A training job: the algorithm's code (a private copy), the dataset read-only, /model
harvested as the next model version when the command exits 0."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hpc_gateway.containers.mounts import CODE, DATASET, MODEL
from hpc_gateway.gateway.kinds.base import JobEnd, SubmitContext

if TYPE_CHECKING:
    from hpc_gateway.containers.runtime import Mount
    from hpc_gateway.gateway.context import Gateway
    from hpc_gateway.gateway.job_model import Job


class TrainingKind:
    """The ``training`` kind."""

    name = "training"
    template = "sbatch/training.sh.j2"

    def prepare(self, ctx: SubmitContext) -> None:
        """``code/``: a writable copy of the algorithm version; ``model/``: empty."""
        from hpc_gateway.gateway.trees import copy_writable

        if ctx.algo is not None:
            copy_writable(ctx.algo.path, ctx.job.job_dir / "code")
        else:
            (ctx.job.job_dir / "code").mkdir(mode=0o700)
        (ctx.job.job_dir / "model").mkdir(mode=0o700)

    def mounts(self, ctx: SubmitContext) -> list[Mount]:
        """/code and /model from the job directory, /dataset read-only from the store."""
        from hpc_gateway.containers.runtime import Mount

        mounts = [Mount(str(ctx.job.job_dir / "code"), CODE)]
        if ctx.data is not None:
            mounts.append(Mount(str(ctx.data.path), DATASET, read_only=True))
        mounts.append(Mount(str(ctx.job.job_dir / "model"), MODEL))
        return mounts

    def template_values(self, ctx: SubmitContext) -> dict[str, Any]:
        """Nothing beyond the base template's."""
        return {}

    def on_end(self, gw: Gateway, job: Job, end: JobEnd) -> str:
        """Harvest /model into the model store when the command succeeded."""
        from hpc_gateway.spool.harvest import harvest_model

        if not end.succeeded or end.record is None:
            return "no model version made"
        return harvest_model(gw, job, end.record)
