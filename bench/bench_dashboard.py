"""The dashboard's pages with 10,000 jobs in the home (issue 21: under 200 ms each).

`gw web` is started on a home filled with 10,000 finished jobs (the job repository, as
bench_cli does), an algorithm, a dataset and a model version; each page is requested
over HTTP ``--repeat`` times in turn and its median time reported against 200 ms, and
against the same server answering its static script (what the server costs alone).

Run it with `scripts/bench.sh` (or alone: `python bench/bench_dashboard.py --home DIR`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_cli import fill_jobs
from bench.timing import gw, gw_exe, median_seconds

GOAL_SECONDS = 0.200
PAGES = ("/jobs", "/jobs?state=COMPLETED", "/jobs/5000", "/jobs/new", "/images",
         "/algorithms", "/datasets", "/notebooks", "/templates", "/models",
         "/models/bench", "/models/bench/v1")


def _stores(env: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "src"
        source.mkdir()
        (source / "train.py").write_text("print('bench')\n")
        (source / "notes.txt").write_text("a model's file\n" * 100)
        for kind, name in (("algo", "bench"), ("data", "rows"), ("model", "bench")):
            if kind == "model":
                os.environ.update(env)
                from gateway.context import Gateway

                Gateway().store("model").push(source, name, {"algo": "bench@v1"})
            else:
                gw({**os.environ, **env}, kind, "push", str(source), "--name", name, "-q")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", required=True, help="a new GW_HOME to fill")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--json", dest="json_out", help="also write the results here")
    args = parser.parse_args()
    env = {"GW_HOME": args.home}
    fill_jobs(env, args.jobs)
    _stores(env)
    server = subprocess.Popen([gw_exe(), "web", "--json"], env={**os.environ, **env},
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        address = json.loads(server.stdout.readline() if server.stdout else "{}")
        cookie = f"gw_token={address['token']}"

        def get(path: str) -> None:
            request = urllib.request.Request(f"http://127.0.0.1:{address['port']}{path}",
                                             headers={"Cookie": cookie})
            with urllib.request.urlopen(request, timeout=30) as response:
                response.read()
                assert response.status == 200, path

        for path in PAGES:   # warm: the first request of each imports its modules
            get(path)
        static = median_seconds(lambda: get("/static/dashboard.js"), args.repeat)
        results = []
        for path in PAGES:
            seconds = median_seconds(lambda path=path: get(path), args.repeat)
            met = seconds <= GOAL_SECONDS
            print(f"{path:<24} {seconds * 1000:7.1f} ms   static {static * 1000:5.1f} ms   "
                  f"goal <= {GOAL_SECONDS * 1000:.0f} ms   {'met' if met else 'MISSED'}",
                  flush=True)
            results.append({"name": f"dashboard {path} ({args.jobs} jobs)", "gw_s": seconds,
                            "baseline": "static file, same server", "baseline_s": static,
                            "ratio": seconds / static if static else float("inf"),
                            "goal_s": GOAL_SECONDS, "met": met})
        if args.json_out:
            Path(args.json_out).write_text(json.dumps(results, indent=2))
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
