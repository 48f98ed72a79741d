"""A training job: the algorithm's code (a private copy), the dataset read-only, /model
harvested as the next model version when the command exits 0."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hpc_gateway.gateway.kinds.base import JobEnd, SubmitContext
from hpc_gateway.gateway.kinds.layout import lay_out_code_and_model, standard_mounts

if TYPE_CHECKING:
    from hpc_gateway.containers.runtime import Mount
    from hpc_gateway.gateway.context import Gateway
    from hpc_gateway.gateway.job_model import Job


class TrainingKind:
    """The ``training`` kind."""

    name = "training"
    template = "sbatch/training.sh.j2"

    node_env: tuple[tuple[str, str], ...] = ()

    def prepare(self, ctx: SubmitContext) -> None:
        """``code/``: a writable copy of the algorithm version; ``model/``: empty."""
        lay_out_code_and_model(ctx)

    def mounts(self, ctx: SubmitContext) -> list[Mount]:
        """/code and /model from the job directory, /dataset read-only from the store."""
        return standard_mounts(ctx)

    def template_values(self, ctx: SubmitContext) -> dict[str, Any]:
        """Nothing beyond the base template's."""
        return {}

    def on_end(self, gw: Gateway, job: Job, end: JobEnd) -> str:
        """Harvest /model into the model store when the command succeeded."""
        from hpc_gateway.spool.harvest import harvest_model

        if not end.succeeded or end.record is None:
            return "no model version made"
        return harvest_model(gw, job, end.record)
