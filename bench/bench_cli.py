"""Benchmarks of the commands people type all day, each against a baseline timed here too.

    gw job submit   vs  sbatch of the same rendered script        (goal: <= 60x)
    gw job list     vs  squeue, with 10,000 jobs in the database   (goal: <= 25x)
    gw job list     vs  `python -c pass` of the same venv, empty home (goal: <= 2x)
    gw --help       vs  `python -c pass` of the same venv (goal: under 0.1 s)
    harvest 1 GB    vs  cp -r of the same /model, same filesystem  (goal: <= 0.1x)

Needs the local cluster (scripts/cluster.sh start) and an imported image; run it with
`scripts/bench.sh`, which prepares everything. Prints one line per benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.timing import gw_exe, median_seconds, report, run


def bench_submit(env: dict[str, str], repeat: int) -> dict[str, object]:
    gw = gw_exe()
    argv = [gw, "job", "submit", "--algo", "bench", "--image", "bench:v1", "--mem", "64M",
            "--shm", "1M", "--", "true"]
    ours = median_seconds(lambda: run(argv, env), repeat)
    last = json.loads(subprocess.run([gw, "job", "list", "--limit", "1", "--json"], env={
        **os.environ, **env}, capture_output=True, text=True, check=True).stdout)[0]
    script = Path(env["GW_HOME"]) / "jobs" / str(last["id"]) / "job.sbatch"
    held = []

    def plain_sbatch() -> None:
        out = subprocess.run(["sbatch", "--parsable", "--hold", str(script)],
                             capture_output=True, text=True, check=True).stdout
        held.append(out.strip().split(";")[0])

    baseline = median_seconds(plain_sbatch, repeat)
    subprocess.run(["scancel", *held], check=False)
    return report("gw job submit", ours, baseline, "sbatch (same script)", 60)


def _spec():
    from gateway.jobs.model import JobSpec

    return JobSpec(command=("python", "train.py"), env={}, runtime="bwrap", resources={},
                   algo="bench@v1", image="bench:v1", image_digest="sha256:0", dataset=None)


def fill_jobs(env: dict[str, str], count: int) -> None:
    """Record ``count`` finished jobs through the job repository, in one transaction."""
    os.environ.update(env)
    from gateway.context import Gateway
    from gateway.home import database as db

    gw = Gateway()
    spec = _spec()
    with db.transaction(gw.conn):
        for i in range(count):
            job = gw.jobs.create(kind="training", origin="cli", name=f"filler-{i}", spec=spec,
                                 model_name="bench", jobs_root=Path("/nonexistent"),
                                 algo_version_id=None, data_version_id=None, image_id=None)
            gw.jobs.attach_slurm_id(job.id, str(10_000_000 + i), "RUNNING")
            gw.jobs.transition(job.id, ["RUNNING"], "COMPLETED", exit_code=0, node="node1")
        # Ten minutes apart, as a real history is: every row shows a different time.
        gw.conn.execute("UPDATE jobs SET submitted = submitted - (? - id) * 600, "
                        "ended = ended - (? - id) * 600", (count, count))


def bench_list(env: dict[str, str], repeat: int) -> dict[str, object]:
    argv = [gw_exe(), "job", "list"]
    ours = median_seconds(lambda: subprocess.run(argv, env={**os.environ, **env},
                                                 stdout=subprocess.DEVNULL, check=True), repeat)
    baseline = median_seconds(lambda: subprocess.run(["squeue"], stdout=subprocess.DEVNULL,
                                                     check=True), repeat)
    return report("gw job list (10,000 jobs)", ours, baseline, "squeue", 25)


def _python_pass(repeat: int) -> float:
    return median_seconds(lambda: subprocess.run([sys.executable, "-c", "pass"], check=True),
                          repeat)


def bench_list_empty(repeat: int) -> dict[str, object]:
    """`gw job list` on a home with no jobs: what gw itself costs beyond the interpreter."""
    with tempfile.TemporaryDirectory() as empty:
        env = {**os.environ, "GW_HOME": str(Path(empty) / "home")}
        run([gw_exe(), "job", "list"], env)  # the first use makes the home
        ours = median_seconds(lambda: subprocess.run([gw_exe(), "job", "list"], env=env,
                                                     capture_output=True, check=True), repeat)
    return report("gw job list (empty home)", ours, _python_pass(repeat), "python -c pass", 2)


def bench_help(repeat: int) -> dict[str, object]:
    """`gw --help`: the goal is absolute (0.1 s); the ratio is to the interpreter's start."""
    ours = median_seconds(lambda: subprocess.run([gw_exe(), "--help"], capture_output=True,
                                                 check=True), repeat)
    baseline = _python_pass(repeat)
    result = report("gw --help", ours, baseline, "python -c pass", 0.1 / baseline)
    print(f"{'':<34} goal: under 0.1 s: {'met' if ours < 0.1 else 'MISSED'}", flush=True)
    return result


def bench_harvest(env: dict[str, str], size_mb: int) -> dict[str, object]:
    """Ingest of one spool file whose job left ``size_mb`` MB in /model, vs cp -r."""
    os.environ.update(env)
    from gateway.context import Gateway
    from spool.format import FORMAT, SpoolRecord, write_record
    from spool.ingest import ingest_spool

    gw = Gateway()
    job = gw.jobs.create(kind="training", origin="cli", name="harvest", spec=_spec(),
                         model_name="bench-harvest", jobs_root=gw.layout.jobs,
                         algo_version_id=None, data_version_id=None, image_id=None)
    job_id = job.id
    gw.jobs.attach_slurm_id(job_id, "1", "RUNNING")
    model = gw.layout.job_dir(job_id) / "model"
    model.mkdir(parents=True)
    chunk = os.urandom(1 << 20)
    for part in range(8):
        with open(model / f"shard-{part}.bin", "wb") as out:
            out.writelines(chunk for _ in range(size_mb // 8))
    (model / "config.json").write_text("{}")
    copy_target = Path(tempfile.mkdtemp(dir=gw.layout.tmp))
    start = time.perf_counter()
    subprocess.run(["cp", "-r", str(model), str(copy_target / "model")], check=True)
    baseline = time.perf_counter() - start
    shutil.rmtree(copy_target)
    write_record(gw.layout.spool, SpoolRecord(FORMAT, gw.home_id, job_id, "1", 0, True, "n",
                                              0, 1))
    start = time.perf_counter()
    ingest_spool(gw)
    ours = time.perf_counter() - start
    assert gw.jobs.get(job_id).model_version_id is not None, "harvest made no model version"
    return report(f"harvest {size_mb} MB /model", ours, baseline, "cp -r", 0.1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", required=True, help="GW_HOME prepared by scripts/bench.sh")
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--harvest-mb", type=int, default=1024)
    parser.add_argument("--json", dest="json_out", help="also write the results here")
    args = parser.parse_args()
    env = {"GW_HOME": args.home}
    results = [bench_help(max(args.repeat, 20)), bench_list_empty(max(args.repeat, 20)),
               bench_submit(env, args.repeat)]
    fill_jobs(env, args.jobs)
    results.append(bench_list(env, args.repeat))
    results.append(bench_harvest(env, args.harvest_mb))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
