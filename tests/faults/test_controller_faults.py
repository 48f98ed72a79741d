"""slurmctld stopped while jobs run and during a submission, then started again.

The controller is really stopped (SIGTERM to the project cluster's slurmctld) and always
started again (`scripts/cluster.sh start`), so later tests find the cluster whole.
"""

from __future__ import annotations

import json
import os
import re
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
