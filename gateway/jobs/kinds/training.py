"""A training job: the algorithm's code (a private copy), the dataset read-only, /model
harvested as the next model version when the command exits 0."""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.jobs.kinds.layout import StandardKind
from gateway.jobs.values import JobEnd

if TYPE_CHECKING:

    from gateway.context import Gateway
    from gateway.jobs.model import Job
    from gateway.jobs.values import Unit


class TrainingKind(StandardKind):
    """The ``training`` kind."""

    name = "training"
    template = "sbatch/training.sh.j2"

    arrays, renders, serves, gangs = True, True, False, True
    resumes = True

    def on_end(self, gw: Gateway, job: Job, unit: Unit, end: JobEnd) -> str:
        """Harvest /model into the model store when the command succeeded."""
        from spool.harvest import harvest_model

        if not end.succeeded or end.record is None:
            return "no model version made"
        return harvest_model(gw, job, unit, end.record)
