"""`gw job top` (the sampler inside the job) and `gw job show`'s accounting, on the real
local Slurm with a real container."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from tests.conftest import run_gw
from tests.integration.conftest import gw_ok, image_and_algo

pytestmark = pytest.mark.container

BUSY = ("timeout 8 sh -c 'while :; do :; done'; "
        "x=$(head -c 40000000 /dev/zero | tr '\\0' a); sleep 5; echo ${#x} > /model/n")


@pytest.fixture(scope="module")
def home(flow_home, busybox_archive, tmp_path_factory):
    base = tmp_path_factory.mktemp("detail")
    env = {**flow_home, "GW_HOME": str(base / "home")}
    return image_and_algo(env, busybox_archive, base, "busy", {"x.sh": "true\n"})


def test_top_shows_load_while_running_and_the_history_after(home):
    run = json.loads(gw_ok(home, "job", "submit", "--json", "--algo", "busy", "--image",
                           "bb:v1", "--mem", "256M", "--", "sh", "-c", BUSY))
    deadline = time.time() + 90
    live: dict = {}
    while time.time() < deadline:
        live = json.loads(gw_ok(home, "job", "top", str(run["id"]), "--json"))
        if live["state"] == "RUNNING" and live["samples"] and \
                live["history"][-1]["cpu_percent"] > 20:
            break
        time.sleep(1)
    assert live["state"] == "RUNNING" and live["history"][-1]["cpu_percent"] > 20, live
    text = gw_ok(home, "job", "top", str(run["id"]))
    assert "now CPU" in text and "memory" in text
    deadline = time.time() + 90
    while json.loads(gw_ok(home, "job", "show", str(run["id"]), "--json"))["state"] in (
            "PENDING", "RUNNING") and time.time() < deadline:
        time.sleep(1)
    done = json.loads(gw_ok(home, "job", "top", str(run["id"]), "--json"))
    assert done["state"] == "COMPLETED", done
    assert not leftover_processes(run["slurm_job_id"])  # the sampler ended with the job
    assert done["peak_rss_bytes"] > 30_000_000, done          # the 40 MB string
    assert done["peak_cpu_percent"] > 50 and done["mean_gpu_percent"] is None
    history = gw_ok(home, "job", "top", str(run["id"]))
    assert "peak memory" in history and "CPU    " in history
    assert any(ch in history for ch in "▁▂▃▄▅▆▇█")
    # Slurm's accounting, in gw job show (it may take a moment to be written).
    deadline = time.time() + 30
    usage: dict = {}
    while time.time() < deadline:
        usage = json.loads(gw_ok(home, "job", "show", str(run["id"]), "--json"))["usage"]
        if usage and usage["max_rss_bytes"] and usage["elapsed_seconds"]:
            break
        time.sleep(1)
    assert usage["max_rss_bytes"] > 0 and usage["elapsed_seconds"] >= 10, usage
    assert "(Slurm accounting)" in gw_ok(home, "job", "show", str(run["id"]))


def leftover_processes(slurm_id: str) -> list[str]:
    """Processes still running the job's batch script (its sampler would be one)."""
    time.sleep(3)  # the sampler checks once per interval that the script still runs
    ps = subprocess.run(["ps", "-ww", "-eo", "pid,args"], capture_output=True, text=True,
                        check=True).stdout
    return [line for line in ps.splitlines() if f"job{int(slurm_id):05d}/" in line
            or f"job{slurm_id}/" in line]


def test_a_cancelled_job_leaves_no_sampler(home):
    run = json.loads(gw_ok(home, "job", "submit", "--json", "--algo", "busy", "--image",
                           "bb:v1", "--mem", "64M", "--", "sh", "-c", "sleep 60"))
    deadline = time.time() + 60
    while not json.loads(gw_ok(home, "job", "top", str(run["id"]), "--json"))["samples"]:
        assert time.time() < deadline
        time.sleep(1)
    gw_ok(home, "job", "cancel", str(run["id"]))
    assert not leftover_processes(run["slurm_job_id"])


def test_top_of_a_sweep_task_and_bad_input(home):
    gw_ok(home, "template", "save", "b", "--algo", "busy", "--image", "bb:v1", "--mem",
          "64M", "--", "sh", "-c", "timeout {{ s }} sh -c 'while :; do :; done'; true")
    run = json.loads(gw_ok(home, "template", "run", "b", "--sweep", "s=1,5", "--json"))
    deadline = time.time() + 90
    while json.loads(gw_ok(home, "job", "show", str(run["id"]), "--json"))["state"] in (
            "PENDING", "RUNNING") and time.time() < deadline:
        time.sleep(1)
    task = json.loads(gw_ok(home, "job", "top", str(run["id"]), "--task", "1", "--json"))
    assert task["task"] == 1 and task["samples"] >= 1 and task["peak_cpu_percent"] > 0
    for args in (["--task", "2"], ["--task", "-1"]):
        proc = run_gw("job", "top", str(run["id"]), *args, env=home, check=False)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    proc = run_gw("job", "top", "999999", env=home, check=False)
    assert proc.returncode == 2 and "no job 999999" in proc.stderr
