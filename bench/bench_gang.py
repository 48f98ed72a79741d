"""Time from submission to every rank running, on two nodes, through gw and without it.

    gang vs srun -N2   `gw job submit --nodes 2` of a command that notes when it started in
                       each rank's container, against `sbatch -N2` of a script whose one
                       `srun` mounts the same SIF with squashfuse and starts the same
                       command in bubblewrap on both nodes (goal: <= 1.2x)

The time of a run is from just before the submission to the later of the two ranks'
starts, both read from /proc/uptime (one clock: the nodes share the machine). Rounds
alternate gw and the baseline; the medians are compared. The benchmark starts the
project's two-node cluster (tests/support/gang_cluster.py) and stops it at the end. Run it
with `scripts/bench.sh` or `python bench/bench_gang.py [--rounds N]`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.timing import gw, report
from tests.support import gang_cluster
from tests.support.images import busybox_rootfs, make_archive

RANK_COMMAND = "cat /proc/uptime > /model/up-$RANK"
# The same in the baseline's script, where the task's shell fills in the rank.
BASELINE_COMMAND = "cat /proc/uptime > /model/up-$SLURM_PROCID"
BASELINE = """#!/bin/bash
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --mem=256M
#SBATCH --output={out}/slurm-%j.out
srun /bin/bash -c '
d=$(mktemp -d /tmp/gw-bench.XXXXXXXXXX); mkdir "$d/root"
squashfuse_ll -o offset={offset} {sif} "$d/root"
bwrap --ro-bind "$d/root" / --dev /dev --proc /proc --tmpfs /tmp --bind {out} /model \\
    --chdir / --clearenv --setenv PATH /bin --setenv RANK "$SLURM_PROCID" \\
    --unshare-pid --die-with-parent --new-session -- sh -c "{baseline_command}"
fusermount3 -u "$d/root"; rm -r "$d"'
"""


def uptime() -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


def ranks_started(directory: Path, timeout: float = 120.0) -> float:
    """The later start of the two ranks, once both have written theirs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = []
        for rank in (0, 1):
            try:
                found.append(float((directory / f"up-{rank}").read_text().split()[0]))
            except (OSError, IndexError, ValueError):
                break
        if len(found) == 2:
            return max(found)
        time.sleep(0.02)
    raise SystemExit(f"the ranks did not start within {timeout:.0f} s ({directory})")


def wait_idle(env: dict[str, str]) -> None:
    """Until the queue is empty, so that rounds do not overlap."""
    for _ in range(600):
        out = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True,
                             env=env, check=True).stdout
        if not out.strip():
            return
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    slurm = gang_cluster.start(2)
    try:
        with tempfile.TemporaryDirectory(prefix="gw-bench-gang.", dir="/var/tmp") as work:
            results = run_rounds(Path(work), {**os.environ, **slurm}, args.rounds)
    finally:
        gang_cluster.stop()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def run_rounds(work: Path, env: dict[str, str], rounds: int) -> list[dict[str, object]]:
    env = {**env, "GW_HOME": str(work / "home"), "GW_SITE_CONFIG": str(work / "none.toml"),
           "GW_USER_CONFIG": str(work / "none-user.toml")}
    archive = make_archive(work / "bb.tar", [busybox_rootfs(work / "rootfs")],
                           env={"PATH": "/bin"}, workdir="/", cmd=["sh"])
    gw(env, "image", "import", str(archive), "--name", "bb:v1", "--here", "-q")
    (work / "algo").mkdir()
    (work / "algo" / "README").write_text("gang benchmark\n")
    gw(env, "algo", "push", str(work / "algo"), "--name", "gang", "-q")

    ours: list[float] = []
    theirs: list[float] = []
    baseline_script = None
    for round_number in range(rounds + 1):   # round 0 warms both paths up, untimed
        wait_idle(env)
        start = uptime()
        job = json.loads(gw(env, "job", "submit", "--json", "--algo", "gang", "--image",
                            "bb:v1", "--nodes", "2", "--mem", "256M", "--", "sh", "-c",
                            RANK_COMMAND))
        took = ranks_started(Path(job["job_dir"]) / "model") - start
        if baseline_script is None:
            text = (Path(job["job_dir"]) / "job.sbatch").read_text()
            offset, sif = re.search(r"-o offset=(\d+) (\S+\.sif)", text).groups()  # type: ignore[union-attr]
            baseline_script = (offset, sif)
        wait_idle(env)
        out = work / f"baseline-{round_number}"
        out.mkdir(mode=0o700)
        script = out / "run.sbatch"
        script.write_text(BASELINE.format(out=out, offset=baseline_script[0],
                                          sif=baseline_script[1],
                                          baseline_command=BASELINE_COMMAND))
        start_base = uptime()
        subprocess.run(["sbatch", "--parsable", str(script)], capture_output=True,
                       text=True, env=env, check=True)
        took_base = ranks_started(out) - start_base
        if round_number:
            ours.append(took)
            theirs.append(took_base)
        print(f"round {round_number}: gw {took:.2f} s, srun -N2 {took_base:.2f} s"
              + ("" if round_number else " (warm-up)"), flush=True)
    wait_idle(env)
    return [report("gang: sbatch to all ranks (2 nodes)", statistics.median(ours),
                   statistics.median(theirs), "sbatch + srun -N2", 1.2)]


if __name__ == "__main__":
    main()
