"""A fake scheduler for unit tests: the Scheduler interface without Slurm.

Integration tests use the real local Slurm; this only stands in at the subprocess
boundary so that state logic can be driven through exact situations.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.common.errors import SlurmError
from gateway.jobs.model import JobSpec
from gateway.slurm.adapter import NodeFree, PartitionLimits, SlurmJobState

if TYPE_CHECKING:
    from gateway.slurm.scheduler import Scheduler


class FakeScheduler:
    """Answers from dictionaries and records every call."""

    def __init__(self, queue: dict[str, SlurmJobState] | None = None,
                 accounting: dict[str, SlurmJobState] | None = None,
                 submit_error: SlurmError | None = None) -> None:
        self.queue = queue or {}
        self.accounting = accounting or {}
        self.submit_error = submit_error
        self.calls: list[object] = []
        self.scripts: list[str] = []
        self.next_id = 4242

    def submit(self, script: Path) -> str:
        self.scripts.append(script.read_text())
        self.calls.append("sbatch")
        if self.submit_error is not None:
            raise self.submit_error
        self.next_id += 1
        return str(self.next_id)

    def query_active(self) -> dict[str, SlurmJobState]:
        self.calls.append("squeue")
        return dict(self.queue)

    def query_finished(self, slurm_job_ids: Iterable[str]) -> dict[str, SlurmJobState]:
        ids = sorted(set(slurm_job_ids))
        self.calls.append(("sacct", tuple(ids)))
        return {i: s for i, s in self.accounting.items() if i in ids}

    def query_array(self, array_job_id: str) -> dict[str, SlurmJobState]:
        self.calls.append(("sacct-array", array_job_id))
        from gateway.slurm.adapter import array_tasks

        return array_tasks(s for s in self.accounting.values() if s.base_id == array_job_id)

    def query_since(self, start: float) -> dict[str, SlurmJobState]:
        self.calls.append("sacct-since")
        return dict(self.accounting)

    def cancel(self, slurm_job_id: str) -> None:
        self.calls.append(("scancel", slurm_job_id))

    def start_now(self, slurm_job_id: str) -> None:
        self.calls.append(("start-now", slurm_job_id))

    def partitions(self) -> dict[str, PartitionLimits]:
        return {"debug": PartitionLimits("debug", 4, 8192, 0, True, True)}

    def usage(self, slurm_job_id: str) -> dict[str, float | int | None]:
        self.calls.append(("sacct-usage", slurm_job_id))
        return {"max_rss_bytes": None, "cpu_seconds": None, "elapsed_seconds": None}

    def test_only(self, script: Path) -> dict[str, str]:
        self.calls.append("sbatch-test-only")
        return {"start": "2026-01-01T00:00:00", "processors": "1", "nodes": "n1",
                "partition": "debug"}

    def nodes_free(self) -> list[NodeFree]:
        self.calls.append("sinfo-nodes")
        return []


if TYPE_CHECKING:
    # mypy holds the fake to the interface: a method the gateway may call that the fake
    # lacks, or one whose signature drifted, fails the lint (scripts/lint.sh).
    _FAKE_IS_A_SCHEDULER: Scheduler = FakeScheduler()


def add_job(gw: Any, *, model_files: dict[str, str] | None = None, slurm_id: str | None = "100",
            model_name: str = "det", state: str = "RUNNING") -> int:
    """Record a job as submission would, then put it in ``state`` with ``slurm_id``."""
    gw.layout.ensure()
    spec = JobSpec(command=("python", "train.py"), env={}, runtime="bwrap",
                   resources={"cpus": 1}, algo="det@v1", image="img:v1",
                   image_digest="sha256:abc", dataset=None)
    job = gw.jobs.create(kind="training", origin="cli", name="j", spec=spec,
                         model_name=model_name, jobs_root=gw.layout.jobs,
                         algo_version_id=None, data_version_id=None, image_id=None)
    if slurm_id is not None:
        assert gw.jobs.attach_slurm_id(job.id, slurm_id, "PENDING")
        if state != "PENDING":
            assert gw.jobs.transition(job.id, ["PENDING"], state)
    (job.job_dir / "model").mkdir(parents=True)
    for rel, content in (model_files or {}).items():
        path = job.job_dir / "model" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return int(job.id)


def slurm_state(slurm_id: str, words: str, node: str = "n1", exit_code: int | None = 0,
                start: float | None = None, end: float | None = None,
                comment: str = "") -> SlurmJobState:
    """What Slurm would say of one job."""
    return SlurmJobState(slurm_id, words, node, exit_code,
                         start if start is not None else time.time() - 10, end,
                         comment=comment)
