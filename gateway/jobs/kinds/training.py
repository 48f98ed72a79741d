"""A training job: the algorithm's code (a private copy), the dataset read-only, /model
harvested as the next model version when the command exits 0."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gateway.jobs.kinds.base import JobEnd, SubmitContext
from gateway.jobs.kinds.layout import lay_out_code_and_model, standard_mounts

if TYPE_CHECKING:
    from pathlib import Path

    from containers.runtime import Mount, Shell
    from gateway.context import Gateway
    from gateway.jobs.model import Job
    from gateway.jobs.shapes.base import Unit
    from gateway.jobs.submit import JobRequest


class TrainingKind:
    """The ``training`` kind."""

    name = "training"
    template = "sbatch/training.sh.j2"

    node_env: tuple[tuple[str, str], ...] = ()
    arrays, renders, serves = True, True, False

    def prepare(self, ctx: SubmitContext) -> None:
        """``code/``: a writable copy of the algorithm version; ``model/``: empty."""
        lay_out_code_and_model(ctx)

    def mounts(self, ctx: SubmitContext, unit_dir: Path | Shell) -> list[Mount]:
        """/code and /model from the job directory, /dataset read-only from the store."""
        return standard_mounts(ctx, unit_dir)

    def template_values(self, ctx: SubmitContext) -> dict[str, Any]:
        """Nothing beyond the base template's."""
        return {}

    def recipe(self, job: Job, options: dict[str, Any], command: tuple[str, ...]
               ) -> tuple[dict[str, Any], tuple[str, ...]]:
        """The shared options and the recorded command."""
        return options, command

    def rerun_request(self, job: Job, request: JobRequest) -> JobRequest:
        """The recipe's request as it is."""
        return request

    def on_end(self, gw: Gateway, job: Job, unit: Unit, end: JobEnd) -> str:
        """Harvest /model into the model store when the command succeeded."""
        from spool.harvest import harvest_model

        if not end.succeeded or end.record is None:
            return "no model version made"
        return harvest_model(gw, job, unit, end.record)
