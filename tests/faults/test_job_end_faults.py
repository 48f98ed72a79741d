"""Jobs that end badly: over their time limit, killed by a signal. The final state comes
from Slurm's accounting, the reason says what happened, and no model version is made."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from tests.faults.test_harvest_faults import make_home
from tests.integration.conftest import gw_ok


def wait_final(env, job_id, timeout=240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = json.loads(gw_ok(env, "job", "show", str(job_id), "--json"))
        if job["state"] not in ("SUBMITTING", "PENDING", "RUNNING", "UNKNOWN"):
            return job
        time.sleep(2)
    raise AssertionError(f"job {job_id} never ended")


def test_job_over_its_time_limit_ends_timeout(flow_home, tmp_path):
    """Injects: a command that outlives its one-minute limit."""
    env = make_home(flow_home, tmp_path, tmp_path / "home")
    job = json.loads(gw_ok(env, "job", "submit", "--json", "--algo", "f", "--image", "bb:v1",
                           "--mem", "32M", "--time", "1", "--", "sh", "-c",
                           "echo partial > /model/w; sleep 600"))
    final = wait_final(env, job["id"])
    assert final["state"] == "TIMEOUT", final
    assert "TIMEOUT" in final["reason"] and final["model"] is None
    assert "no model version made" in final["reason"]


def test_job_killed_by_a_signal_ends_failed_with_the_signal(flow_home, tmp_path):
    """Injects: SIGKILL of the job's command from outside (as the kernel's OOM killer)."""
    env = make_home(flow_home, tmp_path, tmp_path / "home")
    marker = f"gw-fault-{os.getpid()}-{time.time_ns()}"
    job = json.loads(gw_ok(env, "job", "submit", "--json", "--algo", "f", "--image", "bb:v1",
                           "--mem", "32M", "--", "sh", "-c",
                           f"echo partial > /model/w; sleep 600; : {marker}"))
    deadline = time.time() + 60
    pids: list[str] = []
    while not pids and time.time() < deadline:
        pids = subprocess.run(["pgrep", "-f", f"^sh -c .*{marker}"], capture_output=True,
                              text=True, check=False).stdout.split()
        time.sleep(0.3)
    assert pids, "the job's command never started"
    for pid in pids:
        os.kill(int(pid), signal.SIGKILL)
    final = wait_final(env, job["id"])
    assert final["state"] == "FAILED", final
    assert "SIGKILL" in final["reason"] and final["model"] is None, final
    assert not (Path(env["GW_HOME"]) / "models" / "f").exists()


def test_job_over_its_memory_ends_out_of_memory(flow_home, tmp_path):
    """Injects: a command that holds 300 MB in a 64 MB job (Slurm kills the step)."""
    env = make_home(flow_home, tmp_path, tmp_path / "home")
    hog = ("echo partial > /model/w; x=$(head -c 300000000 /dev/zero | tr '\\0' a); "
           "sleep 60; echo ${#x}")
    job = json.loads(gw_ok(env, "job", "submit", "--json", "--algo", "f", "--image", "bb:v1",
                           "--mem", "64M", "--", "sh", "-c", hog))
    try:
        final = wait_final(env, job["id"])
        assert final["state"] == "OUT_OF_MEMORY", final
        assert "memory" in final["reason"] and final["model"] is None, final
        # The step was killed with its batch script before the teardown could run; the
        # image's reaper unmounts it, so its squashfuse daemon ends too (docs/containers.md).
        deadline = time.monotonic() + 30
        while image_daemons(tmp_path) and time.monotonic() < deadline:
            time.sleep(1)
        assert image_daemons(tmp_path) == [], image_daemons(tmp_path)   # unmounted: it ended
    finally:
        release_image_mounts(tmp_path)


def test_a_job_script_killed_outright_leaves_no_image_mounted(flow_home, tmp_path):
    """Injects: SIGKILL of the job's script and its container (what a kill for memory or a
    failed gang's rank past KillWait does): no EXIT trap runs, and squashfuse, a daemon,
    is out of Slurm's reach. The image's reaper unmounts it; its daemon ends."""
    env = make_home(flow_home, tmp_path, tmp_path / "home")
    job = json.loads(gw_ok(env, "job", "submit", "--json", "--algo", "f", "--image", "bb:v1",
                           "--mem", "32M", "--", "sh", "-c", "sleep 600"))
    deadline = time.monotonic() + 60
    bwrap: list[tuple[str, str]] = []
    while not bwrap:
        assert time.monotonic() < deadline, "the job's container never started"
        ps = subprocess.run(["ps", "-ww", "-eo", "pid,ppid,args"], capture_output=True, text=True,
                            check=True).stdout
        bwrap = [(line.split()[0], line.split()[1]) for line in ps.splitlines()
                 if " bwrap " in f" {line} " and env["GW_HOME"] in line]
        time.sleep(0.5)
    assert image_daemons(tmp_path), "the image is not mounted"
    try:
        for pid, script in bwrap:
            os.kill(int(script), signal.SIGKILL)     # the job's script: no trap runs
            os.kill(int(pid), signal.SIGKILL)
        final = wait_final(env, job["id"])
        assert final["state"] in ("FAILED", "CANCELLED"), final
        deadline = time.monotonic() + 30
        while image_daemons(tmp_path) and time.monotonic() < deadline:
            time.sleep(1)
        assert image_daemons(tmp_path) == [], image_daemons(tmp_path)
    finally:
        release_image_mounts(tmp_path)


def image_daemons(tmp_path) -> list[tuple[str, str]]:
    """(pid, args) of the squashfuse daemons of this test's images."""
    ps = subprocess.run(["ps", "-ww", "-eo", "pid,args"], capture_output=True, text=True,
                        check=True).stdout
    found = []
    for line in ps.splitlines():
        pid, _, args = line.strip().partition(" ")
        if "squashfuse" in args and str(tmp_path) in args:
            found.append((pid, args))
    return found


def release_image_mounts(tmp_path) -> None:
    """Tidy up what a failed assertion above left (nothing, when the reaper works)."""
    for pid, args in image_daemons(tmp_path):
        subprocess.run(["fusermount3", "-uz", args.split()[-1]], capture_output=True,
                       check=False)
        subprocess.run(["kill", pid], capture_output=True, check=False)
