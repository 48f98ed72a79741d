"""slurmctld stopped while jobs run and during a submission, then started again.

The controller is really stopped (SIGTERM to the project cluster's slurmctld) and always
started again (`scripts/cluster.sh start`), so later tests find the cluster whole.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from tests.conftest import REPO, run_gw
from tests.faults.test_harvest_faults import make_home
from tests.integration.conftest import gw_ok


def slurmctld_pid() -> int:
    status = subprocess.run(["bash", str(REPO / "scripts" / "cluster.sh"), "status"],
                            capture_output=True, text=True, check=False).stdout
    match = re.search(r"slurmctld\s+running \(pid (\d+)\)", status)
    assert match, status
    return int(match.group(1))


@pytest.fixture()
def controller_down():
    """Stops slurmctld; starts it again after the test, whatever happened."""
    pid = slurmctld_pid()
    os.kill(pid, signal.SIGTERM)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    yield
    subprocess.run(["bash", str(REPO / "scripts" / "cluster.sh"), "start"],
                   capture_output=True, check=True)


def test_slurmctld_stopped_while_a_job_runs_then_started_again(flow_home, tmp_path, request):
    env = make_home(flow_home, tmp_path, tmp_path / "home")
    job = json.loads(gw_ok(env, "job", "submit", "--json", "--algo", "f", "--image", "bb:v1",
                           "--mem", "32M", "--", "sh", "-c", "sleep 12; sh t.sh survived"))
    deadline = time.time() + 60
    while json.loads(gw_ok(env, "job", "show", str(job["id"]), "--json"))["state"] != \
            "RUNNING" and time.time() < deadline:
        time.sleep(0.5)
    request.getfixturevalue("controller_down")
    # Read commands: a warning, the last known state kept as UNKNOWN, never FAILED.
    first = run_gw("job", "list", "--json", env=env)
    assert "Slurm did not answer" in first.stderr
    listed = {j["id"]: j for j in json.loads(first.stdout)}
    assert listed[job["id"]]["state"] == "UNKNOWN"
    second = run_gw("job", "show", str(job["id"]), "--json", env=env)
    assert "has not answered since" in second.stderr  # at once, from the database
    assert "waiting for Slurm" not in second.stderr
    assert "last known state RUNNING" in json.loads(second.stdout)["reason"]
    # A submission now fails clearly (after the notice that it waits) and records nothing.
    before = [j["id"] for j in json.loads(run_gw("job", "list", "--json", env=env).stdout)]
    refused = run_gw("job", "submit", "--json", "--algo", "f", "--image", "bb:v1", "--mem",
                     "32M", "--", "true", env=env, check=False)
    errors = [line for line in refused.stderr.splitlines() if line.startswith("gw: error:")]
    assert refused.returncode == 1 and len(errors) == 1, refused.stderr
    assert "waiting for Slurm" in refused.stderr  # never silent while it waits
    assert [j["id"] for j in json.loads(run_gw("job", "list", "--json", env=env).stdout)] \
        == before
    # The job goes on without the controller; its spool file is harvested as usual.
    deadline = time.time() + 90
    final = None
    while time.time() < deadline:
        final = json.loads(run_gw("job", "show", str(job["id"]), "--json", env=env).stdout)
        if final["state"] == "COMPLETED":
            break
        time.sleep(1)
    assert final and final["state"] == "COMPLETED" and final["model"], final
    assert gw_ok(env, "model", "cat", final["model"], "id") == "survived\n"


def test_states_recover_when_the_controller_is_back(flow_home, tmp_path):
    env = make_home(flow_home, tmp_path, tmp_path / "home")
    job = json.loads(gw_ok(env, "job", "submit", "--json", "--algo", "f", "--image", "bb:v1",
                           "--mem", "32M", "--", "sh", "-c", "sleep 40; sh t.sh back"))
    pid = slurmctld_pid()
    os.kill(pid, signal.SIGTERM)
    try:
        time.sleep(2)
        assert json.loads(run_gw("job", "show", str(job["id"]), "--json", env=env).stdout)[
            "state"] == "UNKNOWN"
    finally:
        subprocess.run(["bash", str(REPO / "scripts" / "cluster.sh"), "start"],
                       capture_output=True, check=True)
    deadline = time.time() + 120
    state = "UNKNOWN"
    while time.time() < deadline and state == "UNKNOWN":
        state = json.loads(gw_ok(env, "job", "show", str(job["id"]), "--json"))["state"]
        time.sleep(1)
    assert state in ("PENDING", "RUNNING", "COMPLETED")  # what Slurm says, not a guess
    gw_ok(env, "job", "cancel", str(job["id"])) if state != "COMPLETED" else None



def test_slurmctld_frozen_during_submit_takes_the_job_and_gw_adopts_it(flow_home, tmp_path):
    """slurmctld freezes (SIGSTOP) just as sbatch sends the job: gw gives up on sbatch
    while slurmctld holds the request; thawed, slurmctld creates the job and its answer
    goes nowhere. The job must be recorded once, adopted by its --comment identity, run
    and be harvested: not lost, not failed, not counted twice.

    The fault is timed by a shim on PATH that freezes the real slurmctld and then runs the
    real sbatch (gw asks sinfo first, and a freeze before that is refused up front)."""
    env = make_home(flow_home, tmp_path, tmp_path / "home")
    (tmp_path / "user.toml").write_text("slurm_timeout = 4\n")
    shims = tmp_path / "shims"
    shims.mkdir()
    (shims / "sbatch").write_text(f"#!/bin/sh\nkill -STOP {slurmctld_pid()}\n"
                                  f"exec {shutil.which('sbatch')} \"$@\"\n")
    (shims / "sbatch").chmod(0o755)
    frozen_env = {**env, "GW_USER_CONFIG": str(tmp_path / "user.toml"),
                  "PATH": f"{shims}:{os.environ['PATH']}"}
    try:
        gave_up = run_gw("job", "submit", "--json", "--algo", "f", "--image", "bb:v1",
                         "--mem", "32M", "--", "sh", "t.sh", "adopted", env=frozen_env,
                         check=False)
    finally:
        os.kill(slurmctld_pid(), signal.SIGCONT)
    errors = [line for line in gave_up.stderr.splitlines() if line.startswith("gw: error:")]
    assert gave_up.returncode != 0 and len(errors) == 1, gave_up.stderr
    assert "job 1" in errors[0], errors  # it says which job is left to adopt
    deadline = time.time() + 120
    job: dict = {}
    while time.time() < deadline:
        job = json.loads(gw_ok(env, "job", "show", "1", "--json"))
        if job["state"] not in ("SUBMITTING", "PENDING", "RUNNING", "UNKNOWN"):
            break
        time.sleep(1)
    assert job["state"] == "COMPLETED" and job["model"], job
    assert gw_ok(env, "model", "cat", job["model"], "id") == "adopted\n"
    assert [j["id"] for j in json.loads(gw_ok(env, "job", "list", "--json"))] == [1]
    # Slurm holds exactly one job with this job's identity, and it is the one recorded.
    comment = f"gw:{json.loads((tmp_path / 'home' / 'home.json').read_text())['home_id']}:1"
    deadline = time.time() + 30
    ids: list[str] = []
    while time.time() < deadline and not ids:
        sacct = subprocess.run(["sacct", "-X", "-n", "-P", "-a", "-o", "jobid,comment",
                                "-S", "now-1hour"], capture_output=True, text=True,
                               env={**os.environ, **env}, check=True).stdout
        ids = [line.split("|")[0] for line in sacct.splitlines()
               if line.split("|")[-1] == comment]
        time.sleep(1)
    assert ids == [str(job["slurm_job_id"])], (ids, job)
