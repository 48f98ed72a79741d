"""The spool watcher on the real local Slurm: it harvests without any other gw command.

Job states are read straight from the database here, because every gw read command
ingests spool files itself and would hide whether the watcher did.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import gw_executable, run_gw
from tests.integration.conftest import gw_ok

pytestmark = pytest.mark.container


@pytest.fixture()
def home(flow_home, tmp_path):
    """A home of its own (watchers must not meet) with an image and an algorithm."""
    from tests.support.images import busybox_rootfs, make_archive

    env = {**flow_home, "GW_HOME": str(tmp_path / "home")}
    archive = make_archive(tmp_path / "bb.tar", [busybox_rootfs(tmp_path / "rootfs")],
                           env={"PATH": "/bin"}, workdir="/", cmd=["sh"])
    gw_ok(env, "image", "import", str(archive), "--name", "bb:v1", "-q")
    (tmp_path / "algo").mkdir()
    (tmp_path / "algo" / "t.sh").write_text('echo "w $1" > /model/w\n')
    gw_ok(env, "algo", "push", str(tmp_path / "algo"), "--name", "w", "-q")
    return env


def start_watcher(env, *args) -> subprocess.Popen:
    proc = subprocess.Popen([gw_executable(), "spool", "watch", *args],
                            env={**os.environ, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    registered = registration(env, proc.pid)
    deadline = time.time() + 30
    while not registered.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert registered.exists(), proc.stderr.read() if proc.poll() is not None else "no watcher"
    return proc


def registration(env, pid: int) -> Path:
    """Where watcher ``pid`` registers itself (one file per watcher)."""
    return Path(env["GW_HOME"]) / "spool" / ".watchers" / f"{socket.gethostname()}.{pid}.json"


def stop_watcher(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return err


def db_job(env, job_id):
    conn = sqlite3.connect(Path(env["GW_HOME"]) / "gateway.db")
    try:
        return conn.execute("SELECT state, model_version_id FROM jobs WHERE id = ?",
                            (job_id,)).fetchone()
    finally:
        conn.close()


def submit(env, arg) -> int:
    return json.loads(gw_ok(env, "job", "submit", "--json", "--algo", "w", "--image", "bb:v1",
                            "--mem", "64M", "--", "sh", "t.sh", arg))["id"]


def wait_harvested(env, job_id, timeout=60):
    """The job's final state once its model is linked (the end handler runs first, then
    the state changes: both must have happened)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        state, model = db_job(env, job_id)
        if model is not None and state not in ("SUBMITTING", "PENDING", "RUNNING"):
            return state
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} not harvested: {db_job(env, job_id)}")


def test_watcher_harvests_with_inotify_and_stops_on_sigterm(home):
    watcher = start_watcher(home)
    try:
        job_id = submit(home, "inotify")
        assert wait_harvested(home, job_id) == "COMPLETED"
        doctor = gw_ok(home, "doctor")
        assert "watcher: running" in doctor and "inotify" in doctor
    finally:
        log = stop_watcher(watcher)
    assert f"job {job_id} (training) COMPLETED, model w@v1" in log
    assert "watcher stopped" in log
    assert not registration(home, watcher.pid).exists()
    assert "none running" in gw_ok(home, "doctor")


def test_watcher_rescans_at_start_what_finished_while_it_was_down(home):
    job_id = submit(home, "down")
    spool = Path(home["GW_HOME"]) / "spool" / f"{job_id}.json"
    deadline = time.time() + 60
    while not spool.exists() and time.time() < deadline:
        time.sleep(0.2)
    assert spool.exists() and db_job(home, job_id)[1] is None  # nobody harvested yet
    watcher = start_watcher(home)
    try:
        assert wait_harvested(home, job_id) == "COMPLETED"
    finally:
        stop_watcher(watcher)
    assert gw_ok(home, "model", "cat", "w@v1", "w") == "w down\n"


def test_two_watchers_on_one_home_each_stay_registered(home):
    """Injects: a second watcher on the same home (a second login node, or one started
    twice). Stopping either leaves the other registered, and both harvest."""
    first = start_watcher(home)
    second = start_watcher(home, "--poll", "1")
    try:
        doctor = gw_ok(home, "doctor")
        assert "2 running" in doctor and str(first.pid) in doctor and str(second.pid) in doctor
        stop_watcher(first)
        doctor = gw_ok(home, "doctor")
        assert "watcher: running" in doctor and f"pid {second.pid}" in doctor, doctor
        assert not registration(home, first.pid).exists()
        job_id = submit(home, "second")
        assert wait_harvested(home, job_id) == "COMPLETED"
    finally:
        if first.poll() is None:
            stop_watcher(first)
        stop_watcher(second)
    assert "none running" in gw_ok(home, "doctor")


def test_watcher_in_polling_mode_harvests_without_inotify(home):
    watcher = start_watcher(home, "--poll", "0.5")
    try:
        assert "polling" in gw_ok(home, "doctor")
        job_id = submit(home, "polled")
        assert wait_harvested(home, job_id) == "COMPLETED"
    finally:
        log = stop_watcher(watcher)
    assert "polling every 0.5 s" in log


HOLD_LOCK = """
import fcntl, sys, time
with open(sys.argv[1], "a") as handle:
    fcntl.flock(handle, fcntl.LOCK_EX)
    print("held", flush=True)
    time.sleep(120)
"""


def test_read_commands_never_wait_for_an_ingest_under_way(home):
    """Injects: another process holding the spool lock (a watcher in a slow harvest)."""
    job_id = submit(home, "busy")
    spool = Path(home["GW_HOME"]) / "spool"
    deadline = time.time() + 60
    while not (spool / f"{job_id}.json").exists() and time.time() < deadline:
        time.sleep(0.2)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(spool / ".lock")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        proc = subprocess.run([gw_executable(), "job", "list", "--json"],
                              env={**os.environ, **home}, capture_output=True, text=True,
                              timeout=60, check=False)  # a blocking ingest would hang here
        assert proc.returncode == 0, proc.stderr
        assert (spool / f"{job_id}.json").exists()  # left to the one who holds the lock
    finally:
        holder.kill()
        holder.wait()
    assert json.loads(gw_ok(home, "job", "show", str(job_id), "--json"))["model"] == "w@v1"


def test_watch_help_names_the_ways_to_keep_it_running(home):
    proc = run_gw("spool", "watch", "--help", env=home)
    assert "--poll" in proc.stdout and "docs/watcher.md" in proc.stdout


def test_watcher_harvests_each_task_of_a_sweep(home):
    gw_ok(home, "template", "save", "w-sweep", "--algo", "w", "--image", "bb:v1", "--mem",
          "64M", "--", "sh", "t.sh", "{{ x }}")
    watcher = start_watcher(home)
    try:
        job_id = json.loads(gw_ok(home, "template", "run", "w-sweep", "--sweep", "x=a,b",
                                  "--json"))["id"]
        deadline = time.time() + 90
        while db_job(home, job_id)[0] != "COMPLETED" and time.time() < deadline:
            time.sleep(0.2)
    finally:
        log = stop_watcher(watcher)
    assert db_job(home, job_id)[0] == "COMPLETED", log
    assert f"job {job_id} task 0 COMPLETED, model w@v" in log
    assert f"job {job_id} task 1 COMPLETED, model w@v" in log
    assert f"job {job_id} (training array) COMPLETED" in log
