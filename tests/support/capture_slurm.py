"""Capture what Slurm's commands print to the gateway, on a real cluster, as fixtures.

    python -m tests.support.capture_slurm OUT_DIR

Run against a running local cluster (SLURM_CONF set: scripts/cluster.sh env, or inside
the Debian 13 root through `scripts/slurm-root.sh run`), it submits a few plain jobs (one
that completes, one that exits 3, an array of two, one held and then cancelled, one
running), drives the gateway's own :class:`gateway.slurm.commands.SlurmCommands` through
a runner that records every command's argv, exit status, stdout and stderr, and writes
them to ``OUT_DIR/<name>.json``. tests/unit/test_slurm_releases.py parses each release's
captures (tests/fixtures/slurm/<release>/) and holds them to the same meaning.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway.common.errors import CommandFailed
from gateway.slurm.commands import SlurmCommands
from gateway.slurm.runner import LocalRunner


class RecordingRunner:
    """A local runner that keeps the last command's argv and answer."""

    def __init__(self) -> None:
        self.last: dict[str, Any] = {}
        self._local = LocalRunner()

    def run(self, argv: Sequence[str], *, timeout: float | None = None,
            cwd: Path | None = None, error_type: type[CommandFailed] = CommandFailed,
            what: str | None = None, slow_notice: str | None = None
            ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` as :class:`LocalRunner` does; record it, failed or not."""
        try:
            proc = self._local.run(argv, timeout=timeout, cwd=cwd, error_type=error_type,
                                   what=what, slow_notice=slow_notice)
        except CommandFailed as exc:
            self.last = {"argv": list(argv), "returncode": exc.returncode, "stdout": "",
                         "stderr": exc.stderr}
            raise
        self.last = {"argv": list(argv), "returncode": proc.returncode,
                     "stdout": proc.stdout, "stderr": proc.stderr}
        return proc


def _sbatch(script: Path, *options: str) -> str:
    """A plain job of this capture (not through the gateway): its Slurm id."""
    out = subprocess.run(["sbatch", "--parsable", *options, str(script)],
                         capture_output=True, text=True, check=True).stdout
    return out.strip().split(";")[0]


def _wait(check: Any, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"capture: {what} did not happen in {timeout:.0f} s")
        time.sleep(1)


def _script(directory: Path, name: str, body: str) -> Path:
    path = directory / f"{name}.sh"
    path.write_text(f"#!/bin/sh\n#SBATCH --mem=32M\n#SBATCH --comment=gw:capture:{name}\n"
                    f"#SBATCH --output={directory}/{name}-%j.out\n{body}\n")
    return path


def capture(out_dir: Path) -> None:
    """Submit the capture's jobs and record the gateway's commands about them."""
    runner = RecordingRunner()
    slurm = SlurmCommands(runner=runner)
    out_dir.mkdir(parents=True, exist_ok=True)
    saved: list[str] = []

    def keep(name: str) -> None:
        """Write the last command's argv and answer as ``name``."""
        saved.append(name)
        (out_dir / f"{name}.json").write_text(json.dumps(runner.last, indent=1) + "\n")

    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        work = Path(tmp)
        done = slurm.submit(_script(work, "done", "echo done"))
        keep("sbatch")
        failed = _sbatch(_script(work, "failed", "exit 3"))
        array = _sbatch(_script(work, "array", "echo $SLURM_ARRAY_TASK_ID"), "--array=0-1")
        held = _sbatch(_script(work, "held", "true"), "--hold")
        running = _sbatch(_script(work, "running", "sleep 120"))
        _wait(lambda: slurm.query_active().get(running) is not None
              and slurm.query_active()[running].slurm_state == "RUNNING", "job running")
        slurm.query_active()
        keep("squeue")
        slurm.cancel(held)
        slurm.cancel(running)
        ids = [done, failed, array, held, running]
        _wait(lambda: all(state.slurm_state not in ("PENDING", "RUNNING", "COMPLETING")
                          for state in slurm.query_finished(ids).values())
              and len(slurm.query_finished(ids)) >= len(ids), "every job's end in sacct")
        time.sleep(2)
        slurm.query_finished(ids)
        keep("sacct")
        slurm.query_array(array)
        keep("sacct_array")
        slurm.usage(done)
        keep("sacct_usage")
        slurm.partitions()
        keep("sinfo")
        slurm.nodes_free()
        keep("sinfo_nodes")
        slurm.test_only(_script(work, "estimate", "true"))
        keep("sbatch_test_only")
    ids_file = {"done": done, "failed": failed, "array": array, "held": held,
                "running": running}
    (out_dir / "jobs.json").write_text(json.dumps(ids_file, indent=1) + "\n")
    version = subprocess.run(["sinfo", "--version"], capture_output=True, text=True,
                             check=True).stdout.strip()
    (out_dir / "version.txt").write_text(version + "\n")
    print(f"capture: {version}: {len(saved)} commands in {out_dir}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m tests.support.capture_slurm OUT_DIR")
    capture(Path(sys.argv[1]).absolute())
