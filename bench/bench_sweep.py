"""A 1,000-task sweep, submitted as one job array, against the two ways without it.

    sweep vs separate   `gw template run T --sweep i=0,...,999` against 1,000 `gw job submit`
                        calls of the same recipe (goal: <= 0.05x)
    sweep vs sbatch     the same sweep against plain `sbatch --array=0-999` of the very
                        script gw wrote for it (goal: <= 60x, as for one submit)

Only submission is timed: every job is cancelled as soon as its submission is timed, so the
cluster does not run them. Run it with `scripts/bench.sh` or
`python bench/bench_sweep.py --home H` (a home with image bench:v1 and algorithm bench).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.timing import gw, report


def cancel(env: dict[str, str], slurm_ids: list[str]) -> None:
    for start in range(0, len(slurm_ids), 200):
        subprocess.run(["scancel", *slurm_ids[start:start + 200]], env=env, check=False,
                       capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", required=True)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--separate", type=int, default=1000,
                        help="separate submissions to time (default: as many as tasks)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    env = {**os.environ, "GW_HOME": args.home}
    gw(env, "template", "save", "bench-sweep", "--replace", "--algo", "bench", "--image",
       "bench:v1", "--mem", "32M", "--", "sh", "run.sh", "{{ i }}")
    values = ",".join(str(i) for i in range(args.tasks))

    start = time.perf_counter()
    out = gw(env, "template", "run", "bench-sweep", "--sweep", f"i={values}", "--json")
    sweep_s = time.perf_counter() - start
    swept = json.loads(out)
    cancel(env, [swept["slurm_job_id"]])

    script = Path(swept["job_dir"]) / "job.sbatch"
    copy = Path(args.home) / "bench-array.sbatch"
    shutil.copy(script, copy)
    start = time.perf_counter()
    proc = subprocess.run(["sbatch", "--parsable", "--hold", str(copy)], capture_output=True,
                          text=True, env=env, check=True, cwd=script.parent)
    sbatch_s = time.perf_counter() - start
    cancel(env, [proc.stdout.strip().split(";")[0]])

    slurm_ids = []
    start = time.perf_counter()
    for i in range(args.separate):
        job = json.loads(gw(env, "job", "submit", "--algo", "bench", "--image", "bench:v1",
                            "--mem", "32M", "--json", "--", "sh", "run.sh", str(i)))
        slurm_ids.append(job["slurm_job_id"])
        if len(slurm_ids) >= 100:  # keep the queue short: cancel as we go (untimed)
            paused = time.perf_counter()
            cancel(env, slurm_ids)
            slurm_ids = []
            start += time.perf_counter() - paused
    separate_s = (time.perf_counter() - start) * args.tasks / max(args.separate, 1)
    cancel(env, slurm_ids)

    label = f"{args.tasks}-task sweep"
    results = [
        report(f"{label} vs separate submits", sweep_s, separate_s,
               f"{args.tasks} x gw job submit" + ("" if args.separate == args.tasks else
                                                  f" (from {args.separate})"), 0.05),
        report(f"{label} vs sbatch --array", sweep_s, sbatch_s, "sbatch --array", 60),
    ]
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
