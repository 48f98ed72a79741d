"""The spool watcher: how fast a finished job's model is listed, and what it costs idle.

    latency, inotify   spool file renamed into place -> its model version in the database
                       (goal: under 1 s; printed as a ratio to 1 s)
    latency, polling   the same with `--poll 2` (goal: under one poll interval; ratio to 2 s)
    idle CPU           CPU seconds an idle watcher uses in a minute, with 10,000 finished
                       jobs in the database (goal: near zero; ratio to the wall time)

Each job is recorded through the job repository and its /model written by hand, so only
the watcher is timed. Run it with `scripts/bench.sh` or `python bench/bench_watcher.py`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.timing import gw_exe, report


def new_job(gw, slurm_id: str) -> int:
    from gateway.jobs.model import JobSpec

    spec = JobSpec(command=("x",), env={}, runtime="bwrap", resources={}, algo="bench@v1",
                   image="bench:v1", image_digest="sha256:0", dataset=None)
    job = gw.jobs.create(kind="training", origin="cli", name="watched", spec=spec,
                         model_name="watched", jobs_root=gw.layout.jobs,
                         algo_version_id=None, data_version_id=None, image_id=None)
    gw.jobs.attach_slurm_id(job.id, slurm_id, "RUNNING")
    (job.job_dir / "model").mkdir(parents=True)
    (job.job_dir / "model" / "weights.bin").write_bytes(os.urandom(1 << 20))
    return job.id


def latency(env: dict[str, str], extra: list[str], runs: int) -> float:
    """Median seconds from a spool file's rename into place to its version's row."""
    os.environ.update(env)
    from gateway.context import Gateway
    from spool.format import FORMAT, SpoolRecord, write_record

    gw = Gateway()
    gw.conn  # noqa: B018 - bind the home before the watcher starts
    watcher = subprocess.Popen([gw_exe(), "spool", "watch", *extra],
                               env={**os.environ, **env}, stderr=subprocess.DEVNULL)
    from spool.watcher import registration_path

    registration = registration_path(gw.layout.spool, pid=watcher.pid)
    while not registration.exists():
        time.sleep(0.01)
    db = sqlite3.connect(gw.config.database, timeout=30)
    times = []
    try:
        for run in range(runs):
            job_id = new_job(gw, str(900000 + run + 1000 * len(extra)))
            time.sleep(0.5)  # the watcher is idle again
            start = time.perf_counter()
            write_record(gw.layout.spool, SpoolRecord(FORMAT, gw.home_id, job_id,
                                                      str(900000 + run + 1000 * len(extra)),
                                                      0, True, "n", 0, 1))
            while db.execute("SELECT 1 FROM versions WHERE job_id = ?",
                             (job_id,)).fetchone() is None:
                time.sleep(0.002)
            times.append(time.perf_counter() - start)
    finally:
        watcher.send_signal(signal.SIGTERM)
        watcher.wait(timeout=30)
    return statistics.median(times)


def idle_cpu(env: dict[str, str], seconds: float) -> float:
    """CPU seconds an idle watcher uses over ``seconds`` (after its start-up)."""
    from bench.bench_cli import fill_jobs

    fill_jobs(env, 10_000)
    watcher = subprocess.Popen([gw_exe(), "spool", "watch"], env={**os.environ, **env},
                               stderr=subprocess.DEVNULL)
    try:
        time.sleep(3)  # start-up and the first rescan are not idle time
        before = cpu_seconds(watcher.pid)
        time.sleep(seconds)
        return cpu_seconds(watcher.pid) - before
    finally:
        watcher.send_signal(signal.SIGTERM)
        watcher.wait(timeout=30)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--idle-seconds", type=float, default=60)
    parser.add_argument("--json", dest="json_out", help="also write the results here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gw-bench-watch.", dir="/var/tmp"))
    results = [
        report("watcher latency, inotify", latency({"GW_HOME": str(work / "a")}, [],
                                                   args.runs), 1.0, "1 s", 1.0),
        report("watcher latency, polling 2 s", latency({"GW_HOME": str(work / "b")},
                                                       ["--poll", "2"], args.runs),
               2.0, "one poll interval", 1.0),
    ]
    used = idle_cpu({"GW_HOME": str(work / "c")}, args.idle_seconds)
    results.append(report(f"idle watcher CPU (10,000 jobs, {args.idle_seconds:.0f} s)", used,
                          args.idle_seconds, "wall time", 0.01))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
