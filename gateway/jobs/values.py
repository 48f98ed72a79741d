"""The values kinds, shapes and the end decision hand each other: a job being submitted
(SubmitContext), one unit of a recorded job (Unit), how a unit ended (JobEnd). Kept apart
so that kinds and shapes depend on these, not on each other."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.context import Gateway
    from gateway.jobs.model import Job
    from gateway.stores.images import ImageRecord
    from gateway.stores.versioned import VersionInfo
    from spool.format import SpoolRecord


@dataclass(frozen=True)
class SubmitContext:
    """A job being submitted: its record (state SUBMITTING) and what it resolved to."""

    gw: Gateway
    job: Job
    image: ImageRecord
    algo: VersionInfo | None
    data: VersionInfo | None


@dataclass(frozen=True)
class JobEnd:
    """How a job ended: the final state decided, and its spool record if it wrote one."""

    state: str
    record: SpoolRecord | None

    @property
    def succeeded(self) -> bool:
        """The command exited 0 by itself and said so in its spool file."""
        return (self.state == "COMPLETED" and self.record is not None
                and self.record.exit_code == 0 and self.record.clean)


@dataclass(frozen=True)
class Unit:
    """One unit of a recorded job: a single job's only task, one task of an array, one
    rank of a gang."""

    index: int | None            # None: the job's only unit
    directory: Path              # holds its code/, model/, log and load samples
    slurm_id: str | None         # ``123`` or ``123_4``; None before Slurm gave an id
    state: str
    reason: str = ""
    spool_name: str = ""         # the spool file its end is written to
    lineage: dict[str, Any] = field(default_factory=dict)   # what its model version adds
    model_version_id: int | None = None
    model_ref: str | None = None  # NAME@vN of the model version it made
    label: str = ""              # how people see it named ("rank 1 on node2"); "" for the job

    @property
    def log(self) -> Path | None:
        """Slurm's output file of this unit (None before Slurm gave the job an id)."""
        from gateway.jobs.layout import JobLayout

        return JobLayout.log_in(self.directory, self.slurm_id) if self.slurm_id else None

    @property
    def usage(self) -> Path | None:
        """The load sampler's file of this unit (None before the job has an id)."""
        from gateway.jobs.layout import JobLayout

        return JobLayout.usage_in(self.directory, self.slurm_id) if self.slurm_id else None

    @property
    def model(self) -> Path:
        """What this unit left in /model."""
        return self.directory / "model"

    @property
    def active(self) -> bool:
        """Not finished yet."""
        from gateway.jobs.states import ACTIVE

        return self.state in ACTIVE
