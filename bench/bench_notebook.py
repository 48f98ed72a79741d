"""Time from `gw notebook start --wait` to an answering JupyterLab, against plain `sbatch`
of a script that starts the same JupyterLab in the same container (squashfuse + bwrap
over the same SIF) and is polled until Jupyter's /api/status answers (goal: <= 1.2x).

Needs the local cluster and the JupyterLab image (scripts/make-jupyter-image.sh); run it
with `scripts/bench.sh`, or alone: `python bench/bench_notebook.py --home DIR`.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.timing import gw_exe, report, run

BASELINE = """#!/bin/bash
#SBATCH --job-name=nb-baseline
#SBATCH --mem=1G
#SBATCH --time=0:10:00
#SBATCH --output={work}/baseline-%j.out
d=$(mktemp -d /tmp/nb-baseline.XXXXXX)
mkdir "$d/rootfs"
squashfuse_ll -o offset={offset} {sif} "$d/rootfs"
ip=$(hostname -I | awk '{{print $1}}')
port=$(shuf -i 20000-60999 -n 1)
echo "$ip $port" > {work}/addr-$SLURM_JOB_ID
trap 'kill $child 2>/dev/null; wait; fusermount3 -u "$d/rootfs"; rm -rf "$d"' EXIT
JUPYTER_TOKEN={token} bwrap --ro-bind "$d/rootfs" / --dev /dev --proc /proc --tmpfs /tmp \\
    --bind {code} /code --chdir /code --setenv HOME /tmp \\
    --setenv PATH /usr/local/bin:/usr/bin:/bin --setenv JUPYTER_TOKEN {token} \\
    --setenv JUPYTERLAB_DIR /usr/local/share/jupyter/lab -- \\
    jupyter lab --no-browser --ServerApp.ip="$ip" --ServerApp.port="$port" \\
    --ServerApp.root_dir=/code --allow-root &
child=$!
wait $child
"""


def answers(url: str, token: str) -> bool:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def baseline_once(work: Path, sif: str, offset: int, code: Path) -> float:
    token = secrets.token_hex(16)
    script = work / "baseline.sbatch"
    script.write_text(BASELINE.format(work=work, sif=sif, offset=offset, code=code,
                                      token=token))
    start = time.perf_counter()
    slurm_id = subprocess.run(["sbatch", "--parsable", str(script)], capture_output=True,
                              text=True, check=True).stdout.strip().split(";")[0]
    addr = work / f"addr-{slurm_id}"
    try:
        while True:
            if addr.exists() and addr.read_text().strip():
                ip, port = addr.read_text().split()
                if answers(f"http://{ip}:{port}/api/status", token):
                    return time.perf_counter() - start
            time.sleep(0.05)
    finally:
        subprocess.run(["scancel", slurm_id], check=False)
        wait_gone(slurm_id)


def wait_gone(slurm_id: str) -> None:
    for _ in range(200):
        out = subprocess.run(["squeue", "-h", "-j", slurm_id], capture_output=True,
                             text=True, check=False).stdout
        if not out.strip():
            return
        time.sleep(0.1)


def gw_once(env: dict[str, str]) -> float:
    start = time.perf_counter()
    out = subprocess.run([gw_exe(), "notebook", "start", "--image", "jupyter:v1", "--algo",
                          "bench", "--mem", "1G", "--time", "0:10:00", "--wait", "--json"],
                         env={**os.environ, **env}, capture_output=True, text=True,
                         check=True).stdout
    elapsed = time.perf_counter() - start
    info = json.loads(out)
    run([gw_exe(), "notebook", "stop", str(info["id"]), "--wait"], env)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", help="GW_HOME to use (default: a new one)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", dest="json_out", help="also write the result here")
    args = parser.parse_args()
    repo = Path(__file__).resolve().parent.parent
    work = Path(tempfile.mkdtemp(prefix="gw-bench-nb.", dir="/var/tmp"))
    env = {"GW_HOME": args.home or str(work / "home")}
    archive = subprocess.run(["bash", str(repo / "scripts" / "make-jupyter-image.sh")],
                             capture_output=True, text=True, check=True).stdout.strip()
    run([gw_exe(), "image", "import", archive, "--name", "jupyter:v1", "--here", "-q"], env)
    (work / "algo").mkdir()
    (work / "algo" / "train.py").write_text("print('bench')\n")
    run([gw_exe(), "algo", "push", str(work / "algo"), "--name", "bench", "-q"], env)
    image = json.loads(subprocess.run([gw_exe(), "image", "show", "jupyter:v1", "--json"],
                                      env={**os.environ, **env}, capture_output=True,
                                      text=True, check=True).stdout)
    code = work / "code"
    code.mkdir()
    ours, base = [], []
    for _ in range(args.repeat):  # in turn, so drift hits both alike
        ours.append(gw_once(env))
        base.append(baseline_once(work, image["sif"], image["partition_offset"], code))
    result = report("gw notebook start -> answering URL", statistics.median(ours),
                    statistics.median(base), "sbatch + same JupyterLab", 1.2)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps([result], indent=2))


if __name__ == "__main__":
    main()
