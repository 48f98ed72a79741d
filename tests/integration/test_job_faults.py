"""Faults around a job's life, on the real local Slurm with real containers.

Each test says what it injects. Slurm commands are real; where a fault must land at an
exact moment (sbatch answered but gw died), a small wrapper around the real sbatch on
PATH does it, as a crash of the login node's process would.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import gw_executable, run_gw
from tests.integration.conftest import gw_ok, image_and_algo

pytestmark = pytest.mark.container


@pytest.fixture(scope="module")
def home(flow_home, busybox_archive, tmp_path_factory):
    """A home with an image and an algorithm whose scripts write /model."""
    base = tmp_path_factory.mktemp("faults")
    image_and_algo(flow_home, busybox_archive, base, "faulty", {
        "train.sh": "#!/bin/sh\nsleep \"${1:-0}\"\necho \"w $2\" > /model/w\n"})
    return {**flow_home, "base": str(base), "archive": str(busybox_archive),
            "algo_dir": str(base / "algo-faulty")}


def submit(env, *args, check=True, extra_env=None):
    proc = run_gw("job", "submit", "--json", "--algo", "faulty", "--image", "bb:v1",
                  "--mem", "128M", "--time", "0:05:00", *args, env={**env, **(extra_env or {})},
                  check=check)
    return proc


def show(env, job_id):
    return json.loads(gw_ok(env, "job", "show", str(job_id), "--json"))


def wait_state(env, job_id, states, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = show(env, job_id)
        if job["state"] in states:
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} never reached {states}: {show(env, job_id)}")


def jobs(env):
    return json.loads(gw_ok(env, "job", "list", "--json"))


def wrapper(base: Path, name: str, body: str) -> dict[str, str]:
    """PATH with an `sbatch` that runs ``body`` around the real one."""
    bindir = base / name
    bindir.mkdir(exist_ok=True)
    real = shutil.which("sbatch")
    (bindir / "sbatch").write_text(f"#!/bin/bash\nREAL={real}\n{body}\n")
    (bindir / "sbatch").chmod(0o755)
    return {"PATH": f"{bindir}:{os.environ['PATH']}"}


def test_refused_sbatch_keeps_a_failed_job_and_the_next_gets_a_new_id(home):
    """Injects: sbatch refuses the job (SBATCH_PARTITION names no partition; sbatch takes
    it over the script's own #SBATCH line, as a site's environment could)."""
    proc = submit(home, "--", "sh", "train.sh", check=False,
                  extra_env={"SBATCH_PARTITION": "no-such-partition"})
    assert proc.returncode == 1 and "Invalid partition" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    failed = jobs(home)[0]
    assert failed["state"] == "FAILED"
    assert "Invalid partition" in show(home, failed["id"])["reason"]
    ok = json.loads(submit(home, "--wait", "--", "sh", "train.sh", "0", "after").stdout)
    assert ok["id"] == failed["id"] + 1 and ok["state"] == "COMPLETED"
    assert show(home, failed["id"])["state"] == "FAILED"  # the late one changed nothing


def test_gw_killed_right_after_sbatch_answers_is_adopted(home):
    """Injects: SIGKILL of the `gw` process the moment sbatch has answered, before the
    Slurm id is recorded. The next command adopts the job by its --comment identity."""
    path = wrapper(Path(home["base"]), "kill-after", 'out=$("$REAL" "$@"); rc=$?; '
                   'echo "$out"; kill -9 $PPID; exit $rc')
    proc = submit(home, "--name", "orphan", "--", "sh", "train.sh", "2", "adopted",
                  check=False, extra_env=path)
    assert proc.returncode == -signal.SIGKILL
    [orphan] = [j for j in jobs(home) if j["name"] == "orphan"]
    job = wait_state(home, orphan["id"], ("COMPLETED", "FAILED"))
    assert job["state"] == "COMPLETED" and job["slurm_job_id"], job
    assert job["model"], job
    model = gw_ok(home, "model", "cat", job["model"], "w")
    assert model == "w adopted\n"
    same = [j for j in jobs(home) if j["slurm_job_id"] == job["slurm_job_id"]]
    assert len(same) == 1  # counted once


def test_cancel_of_a_job_still_submitting_is_refused_clearly(home):
    """Injects: an sbatch that takes 20 s to answer; `gw job cancel` meanwhile."""
    path = wrapper(Path(home["base"]), "slow", 'sleep 20; exec "$REAL" "$@"')
    env = {**os.environ, **home, **path}
    slow = subprocess.Popen([gw_executable(), "job", "submit", "--json", "--algo", "faulty",
                             "--image", "bb:v1", "--name", "slow", "--", "sh", "train.sh"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 30
        while not [j for j in jobs(home) if j["name"] == "slow"] and time.time() < deadline:
            time.sleep(0.3)
        [pending] = [j for j in jobs(home) if j["name"] == "slow"]
        assert pending["state"] == "SUBMITTING"
        proc = run_gw("job", "cancel", str(pending["id"]), env=home, check=False)
        assert proc.returncode == 2 and "still being submitted" in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    finally:
        out, err = slow.communicate(timeout=60)
    assert slow.returncode == 0, err
    job = wait_state(home, json.loads(out)["id"], ("COMPLETED",))
    assert job["name"] == "slow"


def test_spool_file_with_another_slurm_id_changes_nothing(home):
    """Injects: a forged spool file (exit 0, another Slurm id) for a running job."""
    from spool.format import FORMAT, SpoolRecord, write_record

    job = json.loads(submit(home, "--", "sh", "train.sh", "4", "real").stdout)
    running = wait_state(home, job["id"], ("RUNNING",))
    home_id = json.loads((Path(home["GW_HOME"]) / "home.json").read_text())["home_id"]
    write_record(Path(home["GW_HOME"]) / "spool", SpoolRecord(
        FORMAT, home_id, job["id"], "999999", 0, True, "forged", 1, 2))
    proc = run_gw("spool", "sync", env=home)
    assert "put aside" in proc.stderr
    assert show(home, job["id"])["state"] in ("RUNNING", "COMPLETED")
    final = wait_state(home, job["id"], ("COMPLETED", "FAILED"))
    assert final["state"] == "COMPLETED" and final["node"] != "forged"
    assert final["slurm_job_id"] == running["slurm_job_id"]
    assert gw_ok(home, "model", "cat", final["model"], "w") == "w real\n"


def test_killed_slurmstepd_is_not_a_success(home):
    """Injects: SIGKILL of the job's slurmstepd. The script runs on orphaned and Slurm
    still calls the job RUNNING: the gateway follows Slurm, not the orphan's exit 0."""
    job = json.loads(submit(home, "--", "sh", "train.sh", "3", "orphaned").stdout)
    running = wait_state(home, job["id"], ("RUNNING",))
    stepd = subprocess.run(["pgrep", "-f", f"slurmstepd: \\[{running['slurm_job_id']}.batch\\]"],
                           capture_output=True, text=True, check=False).stdout.split()
    assert stepd, "no slurmstepd found for the job"
    os.kill(int(stepd[0]), signal.SIGKILL)
    spool = Path(home["GW_HOME"]) / "spool"
    deadline = time.time() + 30
    while not (spool / f"{job['id']}.json").exists() and time.time() < deadline:
        time.sleep(0.3)
    assert (spool / f"{job['id']}.json").exists(), "the orphaned script wrote no spool file"
    record = json.loads((spool / f"{job['id']}.json").read_text())
    assert record["exit_code"] == 0 and record["clean"] is False
    gw_ok(home, "spool", "sync")
    assert show(home, job["id"])["state"] == "RUNNING"  # as Slurm says
    gw_ok(home, "job", "cancel", str(job["id"]))
    final = wait_state(home, job["id"], ("CANCELLED", "FAILED", "COMPLETED"))
    assert final["state"] == "CANCELLED" and final["model"] is None, final


def test_two_databases_on_one_home_are_refused(home, tmp_path):
    """Injects: a second login node's local database over the same GW_HOME."""
    before = sorted(p.name for p in Path(home["GW_HOME"]).iterdir())
    proc = run_gw("job", "list", env={**home, "GW_DATABASE": str(tmp_path / "node2.db")},
                  check=False)
    assert proc.returncode == 2 and "belongs to another database" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in Path(home["GW_HOME"]).iterdir()) == before


def test_unreachable_controller_answers_from_the_database_with_a_warning(home, tmp_path):
    """Injects: a controller that does not answer (slurm.conf pointing at a dead port)."""
    job = json.loads(submit(home, "--", "sh", "train.sh", "30", "x").stdout)
    wait_state(home, job["id"], ("PENDING", "RUNNING"))
    dead = tmp_path / "dead.conf"
    conf = Path(os.environ["SLURM_CONF"]).read_text()
    dead.write_text("\n".join("SlurmctldPort=1" if line.startswith("SlurmctldPort=") else line
                              for line in conf.splitlines()) + "\n")
    proc = run_gw("job", "list", "--json", env={**home, "SLURM_CONF": str(dead)})
    assert "waiting for Slurm (squeue)" in proc.stderr  # not silent while it waits
    assert "Slurm did not answer" in proc.stderr
    listed = {j["id"]: j for j in json.loads(proc.stdout)}
    assert listed[job["id"]]["state"] == "UNKNOWN"  # not FAILED
    assert "last known state" in show_with(home, dead, job["id"])["reason"]
    recovered = wait_state(home, job["id"], ("PENDING", "RUNNING"))  # the real controller
    assert recovered["state"] in ("PENDING", "RUNNING")
    gw_ok(home, "job", "cancel", str(job["id"]))


def show_with(env, conf, job_id):
    out = run_gw("job", "show", str(job_id), "--json", env={**env, "SLURM_CONF": str(conf)})
    return json.loads(out.stdout)


def test_home_is_private_under_umask_022(home, tmp_path):
    """A whole flow typed with umask 022: import, push, job, harvest, outputs."""
    env = {**home, "GW_HOME": str(tmp_path / "private-home")}

    def gw_022(*args: str) -> str:
        line = " ".join(shlex.quote(a) for a in (gw_executable(), *args))
        proc = subprocess.run(["sh", "-c", f"umask 022; exec {line}"],
                              env={**os.environ, **env}, capture_output=True, text=True,
                              check=False)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    gw_022("image", "import", home["archive"], "--name", "bb:v1", "-q")
    gw_022("algo", "push", home["algo_dir"], "--name", "faulty", "-q")
    job = json.loads(gw_022("job", "submit", "--json", "--wait", "--algo", "faulty",
                            "--image", "bb:v1", "--mem", "64M", "--", "sh", "train.sh", "0",
                            "private"))
    assert job["state"] == "COMPLETED" and job["model"]
    home_dir = tmp_path / "private-home"
    for path in [home_dir, *home_dir.rglob("*")]:
        mode = path.lstat().st_mode
        if not stat.S_ISLNK(mode):
            assert mode & 0o077 == 0, f"{path} is {oct(mode & 0o777)}"


def test_unreadable_spool_file_blocks_nothing_and_doctor_reports_it(home):
    """Injects: a half-written spool file (a node that died mid-write on NFS)."""
    job = json.loads(submit(home, "--wait", "--", "sh", "train.sh", "0", "ok").stdout)
    spool = Path(home["GW_HOME"]) / "spool"
    stuck = spool / "999999.json"
    stuck.write_text('{"format": 2, "job_id": 99')
    young = time.time() - 30
    os.utime(stuck, (young, young))
    listed = json.loads(gw_ok(home, "job", "list", "--json"))
    assert any(j["id"] == job["id"] for j in listed)
    assert stuck.exists()  # kept for a retry, not thrown away: the rest may still come
    doctor = run_gw("doctor", env=home, check=False)
    assert "999999.json" in doctor.stdout and "kept for a retry" in doctor.stdout
    # Still unreadable long after its last write: put aside, named, and nothing blocked.
    old = time.time() - 600
    os.utime(stuck, (old, old))
    listed = run_gw("job", "list", "--json", env=home)
    assert any(j["id"] == job["id"] for j in json.loads(listed.stdout))
    assert "999999.json put aside" in listed.stderr
    assert not stuck.exists() and (spool / "aside" / "999999.json").exists()
    doctor = run_gw("doctor", env=home, check=False)
    assert doctor.returncode == 0 and "999999.json" in doctor.stdout
    (spool / "aside" / "999999.json").unlink()


def test_percent_in_home_runs_jobs_and_keeps_their_logs(home, tmp_path):
    """Slurm reads %j, %u, ... in --output: a home holding them must still work."""
    env = {**home, "GW_HOME": str(tmp_path / "gw%j%u%%home")}
    gw_ok(env, "image", "import", home["archive"], "--name", "bb:v1", "-q")
    gw_ok(env, "algo", "push", home["algo_dir"], "--name", "faulty", "-q")
    job = json.loads(gw_ok(env, "job", "submit", "--json", "--wait", "--algo", "faulty",
                           "--image", "bb:v1", "--mem", "64M", "--", "sh", "-c",
                           "echo logged; echo w > /model/w"))
    assert job["state"] == "COMPLETED", job
    assert job["log"].startswith(env["GW_HOME"]) and Path(job["log"]).exists()
    assert gw_ok(env, "job", "logs", str(job["id"])) == "logged\n"
