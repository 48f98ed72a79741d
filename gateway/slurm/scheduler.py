"""What the gateway needs from a batch scheduler, as an interface.

:class:`gateway.slurm.commands.SlurmCommands` (the Slurm CLI) implements it; a pyslurm
backend or a fake for unit tests would too. Every query is batched: one call covers all
the jobs asked about, never one call per job.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from gateway.slurm.adapter import NodeFree, PartitionLimits, SlurmJobState


class Scheduler(Protocol):
    """Submit, ask about many jobs at once, cancel."""

    def submit(self, script: Path) -> str:
        """Submit a batch script; returns the scheduler's job id."""
        ...

    def query_active(self) -> dict[str, SlurmJobState]:
        """This user's jobs the controller still knows (one call)."""
        ...

    def query_finished(self, slurm_job_ids: Iterable[str]) -> dict[str, SlurmJobState]:
        """Final records of these jobs from accounting (one call)."""
        ...

    def query_array(self, array_job_id: str) -> dict[str, SlurmJobState]:
        """The tasks of one job array from accounting, keyed ``ARRAY_TASK`` (``12_3``)."""
        ...

    def query_since(self, start: float) -> dict[str, SlurmJobState]:
        """Accounting records of this user's jobs submitted since ``start`` (one call),
        with their comments: how a job whose submission answer was lost is found."""
        ...

    def cancel(self, slurm_job_id: str) -> None:
        """Cancel one job."""
        ...

    def start_now(self, slurm_job_id: str) -> None:
        """Let a pending job start as soon as it fits (its begin time: now)."""
        ...

    def partitions(self) -> dict[str, PartitionLimits]:
        """Per partition, its largest node."""
        ...

    def test_only(self, script: Path) -> dict[str, str]:
        """Slurm's start estimate for a script (start, processors, nodes, partition)."""
        ...

    def nodes_free(self) -> list[NodeFree]:
        """What each node of each partition has free now."""
        ...

    def usage(self, slurm_job_id: str) -> dict[str, float | int | None]:
        """What accounting says one job used (max_rss_bytes, cpu_seconds,
        elapsed_seconds)."""
        ...
