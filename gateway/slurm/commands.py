"""The only code that runs Slurm commands (sbatch, squeue, sacct, scancel, sinfo).

Output parsing lives in :mod:`gateway.slurm.adapter`. Every poll is batched: one
``squeue`` or ``sacct`` call covers all the jobs asked about.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from pathlib import Path

from hpc_gateway.gateway.errors import SlurmError, SlurmUnavailable
from hpc_gateway.gateway.process import run_command
from hpc_gateway.gateway.slurm import adapter
from hpc_gateway.gateway.slurm.adapter import PartitionLimits, SlurmJobState


class SlurmCommands:
    """Runs the Slurm CLI on this host (the default backend)."""

    def __init__(self, timeout: float = 60) -> None:
        self.timeout = timeout

    def _run(self, argv: list[str], what: str, cwd: Path | None = None
             ) -> subprocess.CompletedProcess[str]:
        conf = os.environ.get("SLURM_CONF")
        if conf and not os.path.isfile(conf):
            # Slurm itself would retry for 60 s before saying so.
            raise SlurmUnavailable(argv, 1, f"SLURM_CONF={conf} does not exist", what)
        try:
            return run_command(argv, timeout=self.timeout, error_type=SlurmError, what=what,
                               cwd=cwd)
        except SlurmError as exc:
            if exc.returncode is None or adapter.is_unavailable(exc.stderr):
                raise SlurmUnavailable(exc.argv, exc.returncode, exc.stderr, what) from exc
            raise

    def submit(self, script: Path) -> str:
        """``sbatch --parsable SCRIPT``; returns the Slurm job id.

        sbatch can exit 0 and still print an error: no job id in its output is a failure.
        """
        argv = ["sbatch", "--parsable", str(script)]
        proc = self._run(argv, "sbatch", cwd=script.parent)
        job_id = adapter.parse_sbatch_output(proc.stdout)
        if job_id is None:
            raise SlurmError(argv, proc.returncode, proc.stderr or proc.stdout or
                             "sbatch printed no job id", "sbatch")
        return job_id

    def queue(self) -> dict[str, SlurmJobState]:
        """The current user's jobs known to slurmctld (one ``squeue`` call)."""
        out = self._run(["squeue", "--me", "--noheader", "--states=all",
                         f"--format={adapter.SQUEUE_FORMAT}"], "squeue").stdout
        return adapter.parse_squeue(out)

    def accounting(self, slurm_job_ids: Iterable[str]) -> dict[str, SlurmJobState]:
        """Final states from the accounting database (one ``sacct`` call)."""
        ids = sorted(set(slurm_job_ids))
        if not ids:
            return {}
        out = self._run(["sacct", "--allocations", "--parsable2", "--noheader",
                         f"--format={adapter.SACCT_FIELDS}", f"--jobs={','.join(ids)}"],
                        "sacct").stdout
        return adapter.parse_sacct(out)

    def cancel(self, slurm_job_id: str) -> None:
        """``scancel ID``."""
        self._run(["scancel", slurm_job_id], "scancel")

    def partitions(self) -> dict[str, PartitionLimits]:
        """Per partition, its largest node (one ``sinfo`` call)."""
        out = self._run(["sinfo", "--noheader", f"--format={adapter.SINFO_FORMAT}"], "sinfo").stdout
        return adapter.parse_sinfo(out)
