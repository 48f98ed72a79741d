"""The only code that runs Slurm commands (sbatch, squeue, sacct, scancel, sinfo).

It implements :class:`gateway.slurm.scheduler.Scheduler` with the Slurm CLI, through a
:class:`gateway.runner.Runner` (this host today; a login node over SSH later). Output
parsing lives in :mod:`gateway.slurm.adapter`. Every poll is batched: one ``squeue`` or
``sacct`` call covers all the jobs asked about.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

from gateway.common.errors import SlurmError, SlurmUnavailable
from gateway.slurm import adapter
from gateway.slurm.adapter import PartitionLimits, SlurmJobState
from gateway.slurm.runner import LocalRunner, Runner


class SlurmCommands:
    """The Slurm CLI as the gateway's scheduler (the default backend).

    ``timeout`` bounds sbatch and scancel; ``read_timeout`` bounds the queries that read
    commands make, so that a controller that does not answer costs seconds, not minutes.
    """

    def __init__(self, timeout: float = 60, read_timeout: float | None = None,
                 runner: Runner | None = None) -> None:
        self.timeout = timeout
        self.read_timeout = read_timeout if read_timeout is not None else timeout
        self.runner: Runner = runner or LocalRunner()

    def _run(self, argv: list[str], what: str, timeout: float, cwd: Path | None = None
             ) -> subprocess.CompletedProcess[str]:
        notice = (f"waiting for Slurm ({what}); giving up after {timeout:.0f} s"
                  if timeout == self.read_timeout else f"waiting for Slurm ({what})")
        conf = os.environ.get("SLURM_CONF")
        if conf and not os.path.isfile(conf):
            # Slurm itself would retry for 60 s before saying so.
            raise SlurmUnavailable(argv, 1, f"SLURM_CONF={conf} does not exist", what)
        try:
            return self.runner.run(argv, timeout=timeout, error_type=SlurmError, what=what,
                                   cwd=cwd, slow_notice=notice)
        except SlurmError as exc:
            if exc.returncode is None or adapter.is_unavailable(exc.stderr):
                raise SlurmUnavailable(exc.argv, exc.returncode, exc.stderr, what) from exc
            raise

    def submit(self, script: Path) -> str:
        """``sbatch --parsable SCRIPT``; returns the Slurm job id.

        sbatch can exit 0 and still print an error: no job id in its output is a failure.
        """
        argv = ["sbatch", "--parsable", str(script)]
        proc = self._run(argv, "sbatch", self.timeout, cwd=script.parent)
        job_id = adapter.parse_sbatch_output(proc.stdout)
        if job_id is None:
            raise SlurmError(argv, proc.returncode, proc.stderr or proc.stdout or
                             "sbatch printed no job id", "sbatch")
        return job_id

    def query_active(self) -> dict[str, SlurmJobState]:
        """The current user's jobs known to slurmctld (one ``squeue`` call)."""
        out = self._run(["squeue", "--me", "--noheader", "--states=all",
                         f"--format={adapter.SQUEUE_FORMAT}"], "squeue",
                        self.read_timeout).stdout
        return adapter.parse_squeue(out)

    def query_finished(self, slurm_job_ids: Iterable[str]) -> dict[str, SlurmJobState]:
        """Final states from the accounting database (one ``sacct`` call)."""
        ids = sorted(set(slurm_job_ids))
        if not ids:
            return {}
        out = self._run(["sacct", "--allocations", "--parsable2", "--noheader",
                         f"--format={adapter.SACCT_FIELDS}", f"--jobs={','.join(ids)}"],
                        "sacct", self.read_timeout).stdout
        return adapter.parse_sacct(out)

    def query_array(self, array_job_id: str) -> dict[str, SlurmJobState]:
        """The tasks of one job array from accounting (one ``sacct``), keyed ARRAY_TASK."""
        out = self._run(["sacct", "--allocations", "--parsable2", "--noheader",
                         f"--format={adapter.SACCT_FIELDS}", f"--jobs={array_job_id}"],
                        "sacct", self.read_timeout).stdout
        return adapter.array_tasks(adapter.parse_sacct(out).values())

    def query_since(self, start: float) -> dict[str, SlurmJobState]:
        """This user's jobs submitted since ``start``, from accounting (one ``sacct``)."""
        since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(start))
        out = self._run(["sacct", "--allocations", "--parsable2", "--noheader",
                         f"--format={adapter.SACCT_FIELDS}", f"--starttime={since}",
                         "--endtime=now"], "sacct", self.read_timeout).stdout
        return adapter.parse_sacct(out)

    def cancel(self, slurm_job_id: str) -> None:
        """``scancel ID``."""
        self._run(["scancel", slurm_job_id], "scancel", self.timeout)

    def start_now(self, slurm_job_id: str) -> None:
        """``scontrol update JobId=ID StartTime=now``: a job's owner may move its begin
        time (Slurm holds a requeued job back two minutes)."""
        self._run(["scontrol", "update", f"JobId={slurm_job_id}", "StartTime=now"],
                  "scontrol update", self.timeout)

    def usage(self, slurm_job_id: str) -> dict[str, float | int | None]:
        """What accounting says one job used: peak memory of any step, CPU and elapsed
        seconds (one ``sacct`` over the allocation and its steps)."""
        out = self._run(["sacct", "--parsable2", "--noheader", f"--jobs={slurm_job_id}",
                         "--format=JobID,MaxRSS,TotalCPU,Elapsed"], "sacct",
                        self.read_timeout).stdout
        return adapter.parse_sacct_usage(out)

    def test_only(self, script: Path) -> dict[str, str]:
        """``sbatch --test-only``: Slurm's start estimate for the script; nothing is
        submitted. Slurm's refusal raises :class:`SlurmError` with its words."""
        argv = ["sbatch", "--test-only", str(script)]
        proc = self._run(argv, "sbatch --test-only", self.timeout, cwd=script.parent)
        said = adapter.parse_test_only(proc.stderr + proc.stdout)
        if said is None:
            raise SlurmError(argv, proc.returncode, proc.stderr or proc.stdout or
                             "no estimate", "sbatch --test-only")
        return said

    def nodes_free(self) -> list[adapter.NodeFree]:
        """What each node of each partition has free now (one ``sinfo -N`` call)."""
        out = self._run(["sinfo", "--Node", "--noheader", f"--Format={adapter.NODES_FORMAT}"],
                        "sinfo", self.read_timeout).stdout
        return adapter.parse_nodes_free(out)

    def partitions(self) -> dict[str, PartitionLimits]:
        """Per partition, its largest node (one ``sinfo`` call)."""
        out = self._run(["sinfo", "--noheader", f"--format={adapter.SINFO_FORMAT}"], "sinfo",
                        self.read_timeout).stdout
        return adapter.parse_sinfo(out)
