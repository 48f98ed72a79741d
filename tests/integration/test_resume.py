"""Jobs that outlive their time limit (--restarts, docs/resume.md), on the real local Slurm
and a real container: signalled ahead of the limit, the command saves its checkpoint in
/model; the job requeues itself and the next attempt goes on from it; one model version
is made, by the attempt that exits 0."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.integration.conftest import gw_ok, image_and_algo

# About 150 s of work in one-second steps. On SIGUSR1 it saves the step it reached and
# exits; a resumed attempt starts from the saved step.
WORK = r"""
step=0
if [ -f /model/step ]; then step=$(cat /model/step); fi
echo "attempt $GW_ATTEMPT resumed=$GW_RESUMED from step $step"
echo "$GW_ATTEMPT:$GW_RESUMED:$step" >> /model/starts
trap 'echo "$step" > /model/step; echo "saved step $step"; exit 0' USR1
while [ "$step" -lt "${1:-150}" ]; do
    sleep 1 & wait $!
    step=$((step + 1))
    echo "$step" > /model/step.tmp && mv /model/step.tmp /model/step   # a lost node warns not
done
echo "$step" > /model/step
echo "finished after $step steps" > /model/result
"""


@pytest.fixture(scope="module")
def home(flow_home, busybox_archive, tmp_path_factory) -> dict[str, str]:
    base = tmp_path_factory.mktemp("resume")
    env = {**flow_home, "GW_HOME": str(base / "home")}
    failing = "echo failing; echo partial > /model/partial; exit 1\n"
    return image_and_algo(env, busybox_archive, base, "long",
                          {"work.sh": WORK, "fail.sh": failing})


def _submit(env: dict[str, str], *args: str) -> dict:
    return json.loads(gw_ok(env, "job", "submit", "--json", "--algo", "long", "--image",
                            "bb:v1", "--mem", "64M", *args))


def _wait_final(env: dict[str, str], job_id: int, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = json.loads(gw_ok(env, "job", "show", str(job_id), "--json"))
        if job["state"] not in ("SUBMITTING", "PENDING", "RUNNING", "UNKNOWN"):
            return job
        assert time.monotonic() < deadline, f"job {job_id} never ended: {job}"
        time.sleep(3)


def test_a_job_past_its_time_limit_resumes_from_its_checkpoint_and_makes_one_version(home):
    job = _submit(home, "--time", "1", "--restarts", "3", "--save-seconds", "10", "--",
                  "sh", "work.sh", "130")
    final = _wait_final(home, job["id"], 600)
    log = gw_ok(home, "job", "logs", str(job["id"]))
    assert final["state"] == "COMPLETED", (final, log)
    attempts = final["attempts"]
    assert 3 <= len(attempts) <= 4, attempts   # ~150 s of work in one-minute attempts
    assert [a["attempt"] for a in attempts] == list(range(1, len(attempts) + 1))
    assert all(a["end"] == "time limit: requeued" for a in attempts[:-1]), attempts
    assert attempts[-1]["end"] == "exit 0" and all(a["started"] for a in attempts)
    # one version, from the last attempt's /model, holding the finished result
    versions = json.loads(gw_ok(home, "model", "versions", "long", "--json"))
    assert [v["ref"] for v in versions if v["job_id"] == job["id"]] == [final["model"]]
    made = Path(json.loads(gw_ok(home, "model", "show", final["model"], "--json"))["path"])
    assert (made / "result").read_text() == "finished after 130 steps\n"
    starts = (made / "starts").read_text().split()
    # each resumed attempt started where the one before saved, and was told so
    assert len(starts) == len(attempts) and starts[0] == "1:0:0", starts
    assert [s.split(":")[:2] for s in starts[1:]] == [
        [str(n), "1"] for n in range(2, len(attempts) + 1)], starts
    steps = [int(s.split(":")[2]) for s in starts]
    assert steps == sorted(steps) and len(set(steps)) == len(steps), starts
    # the log holds every attempt in order, a marker between them
    for number in range(2, len(attempts) + 1):
        assert f"---- attempt {number} of at most 4, resumed" in log, log
    assert log.index("attempt 1 resumed=0") < log.index("attempt 2 resumed=1")
    shown = gw_ok(home, "job", "show", str(job["id"]))
    assert "attempts (--restarts 3)" in shown and "time limit: requeued" in shown


def test_a_failing_command_is_restarted_only_when_asked(home):
    plain = _submit(home, "--restarts", "2", "--", "sh", "fail.sh")
    asked = _submit(home, "--restarts", "2", "--restart-on-failure", "--", "sh", "fail.sh")
    once = _wait_final(home, plain["id"], 240)
    assert once["state"] == "FAILED" and [a["end"] for a in once["attempts"]] == ["exit 1"]
    thrice = _wait_final(home, asked["id"], 300)
    assert thrice["state"] == "FAILED", thrice
    assert [a["end"] for a in thrice["attempts"]] == [
        "exit 1: requeued", "exit 1: requeued", "exit 1"], thrice["attempts"]
    assert once["model"] is None and thrice["model"] is None
    # what the attempts left in /model is kept, and shown
    assert [m["files"] for m in thrice["model_left"]] == [1], thrice["model_left"]
    assert (Path(thrice["model_left"][0]["path"]) / "partial").read_text() == "partial\n"
    assert "left in /model" in gw_ok(home, "job", "show", str(asked["id"]))
    log = gw_ok(home, "job", "logs", str(asked["id"]))
    assert log.count("failing") == 3, log


def test_what_cannot_resume_is_refused_before_anything_is_recorded(home):
    before = json.loads(gw_ok(home, "job", "list", "--json"))
    from tests.conftest import run_gw

    proc = run_gw("job", "submit", "--algo", "long", "--image", "bb:v1", "--save-seconds",
                  "30", "--", "true", env=home, check=False)
    assert proc.returncode == 2 and "goes with --restarts" in proc.stderr, proc.stderr
    proc = run_gw("job", "submit", "--algo", "long", "--image", "bb:v1", "--restarts", "-1",
                  "--", "true", env=home, check=False)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert json.loads(gw_ok(home, "job", "list", "--json")) == before


def test_a_rendered_script_run_by_plain_sbatch_resumes(home, tmp_path):
    """`gw job render --restarts`: the run, requeued ahead of its limit, keeps its Slurm id
    and so its directory and /model; it is one job with its attempts and one version."""
    import os
    import subprocess

    script = tmp_path / "long.sbatch"
    gw_ok(home, "job", "render", "--algo", "long", "--image", "bb:v1", "--mem", "64M",
          "--time", "1", "--restarts", "1", "--save-seconds", "10", "-o", str(script),
          "--", "sh", "work.sh", "62")
    before = {j["id"] for j in json.loads(gw_ok(home, "job", "list", "--json"))}
    slurm_id = subprocess.run(["sbatch", "--parsable", str(script)], capture_output=True,
                              text=True, check=True, cwd=tmp_path,
                              env={**os.environ, **home}).stdout.strip().split(";")[0]
    deadline = time.monotonic() + 60
    runs: list[dict] = []
    while not runs:
        runs = [j for j in json.loads(gw_ok(home, "job", "list", "--json"))
                if j["id"] not in before]
        assert time.monotonic() < deadline, "the run was never recorded"
        time.sleep(2)
    assert [r["slurm_job_id"] for r in runs] == [slurm_id], runs
    final = _wait_final(home, runs[0]["id"], 300)
    assert final["state"] == "COMPLETED" and final["origin"] == "sbatch", final
    assert [a["end"] for a in final["attempts"]] == ["time limit: requeued", "exit 0"], final
    starts = _one_version_from(home, final, 62)
    assert starts[0] == "1:0:0" and starts[1].startswith("2:1:"), starts
    assert int(starts[1].split(":")[2]) > 0, starts   # it went on from its checkpoint
    log = gw_ok(home, "job", "logs", str(final["id"]))
    assert "---- attempt 2 of at most 2, resumed" in log and "kept from the attempt" in log


def _wait_progress(home: dict[str, str], job_id: int, steps: int, timeout: float = 180
                   ) -> None:
    """Until the job's command has saved at least ``steps`` steps in its /model."""
    job_dir = Path(json.loads(gw_ok(home, "job", "show", str(job_id), "--json"))["job_dir"])
    deadline = time.monotonic() + timeout
    while True:
        try:
            if int((job_dir / "model" / "step").read_text() or 0) >= steps:
                return
        except (OSError, ValueError):
            pass
        assert time.monotonic() < deadline, f"job {job_id} made no progress"
        time.sleep(1)


def _one_version_from(home: dict[str, str], final: dict, steps: int) -> list[str]:
    versions = json.loads(gw_ok(home, "model", "versions", "long", "--json"))
    assert [v["ref"] for v in versions if v["job_id"] == final["id"]] == [final["model"]]
    made = Path(json.loads(gw_ok(home, "model", "show", final["model"], "--json"))["path"])
    assert (made / "result").read_text() == f"finished after {steps} steps\n"
    return (made / "starts").read_text().split()


def test_a_preempted_job_is_requeued_and_resumes(home):
    """The scavenger partition's job is requeued by a job of the urgent partition (its
    PriorityTier is higher, PreemptMode=REQUEUE) and goes on from its checkpoint."""
    cpus = "2"   # the whole node: the urgent job cannot start beside it
    low = _submit(home, "--partition", "scavenger", "--cpus", cpus, "--restarts", "2",
                  "--", "sh", "work.sh", "30")
    _wait_progress(home, low["id"], 5)
    high = _submit(home, "--partition", "urgent", "--cpus", cpus, "--", "sh", "-c",
                   "echo urgent")
    assert _wait_final(home, high["id"], 240)["state"] == "COMPLETED"
    final = _wait_final(home, low["id"], 300)
    assert final["state"] == "COMPLETED", final
    attempts = final["attempts"]
    assert len(attempts) == 2 and attempts[-1]["end"] == "exit 0", attempts
    starts = _one_version_from(home, final, 30)
    assert starts[0] == "1:0:0" and starts[1].startswith("2:1:"), starts
    assert int(starts[1].split(":")[2]) >= 5, starts   # it went on from its checkpoint


def test_a_job_whose_node_is_lost_is_requeued_and_completes(home, cluster_env):
    """The job's slurmd is killed: Slurm declares the node down (SlurmdTimeout), fails
    the job's attempt (NODE_FAIL) and requeues it; slurmd started again, it completes."""
    import os
    import signal
    import subprocess

    job = _submit(home, "--restarts", "2", "--", "sh", "work.sh", "120")  # outlives the
    # minute Slurm takes to declare the node down (SlurmdTimeout=60)
    _wait_progress(home, job["id"], 3)
    run_dir = Path(cluster_env["SLURM_CONF"]).parent.parent / "run"
    os.kill(int((run_dir / "slurmd.pid").read_text()), signal.SIGKILL)
    try:
        deadline = time.monotonic() + 240
        while "down" not in subprocess.run(["sinfo", "-h", "-o", "%T"], text=True,
                                           env={**os.environ, **cluster_env},
                                           capture_output=True).stdout:
            assert time.monotonic() < deadline, "the node was never declared down"
            time.sleep(3)
    finally:
        from tests.conftest import REPO

        # from /: slurmd keeps the directory it was started in
        started = subprocess.run(["bash", str(REPO / "scripts" / "cluster.sh"), "start"],
                                 capture_output=True, text=True, cwd="/",
                                 env={**os.environ, **cluster_env})
        assert started.returncode == 0, started.stderr
    final = _wait_final(home, job["id"], 300)
    assert final["state"] == "COMPLETED", final
    assert len(final["attempts"]) == 2, final["attempts"]
    starts = _one_version_from(home, final, 120)
    assert starts[1].startswith("2:1:") and int(starts[1].split(":")[2]) >= 3, starts
    assert "no end written" in final["attempts"][0]["end"] or \
        final["attempts"][0]["end"].startswith("signal"), final["attempts"]


def test_each_task_of_a_sweep_resumes_on_its_own(home):
    """A sweep with --restarts: each array task is requeued on its own (its Slurm id
    ARRAY_TASK), from its own /model, and makes its own one version."""
    gw_ok(home, "recipe", "save", "resumable", "--algo", "long", "--image", "bb:v1",
          "--mem", "64M", "--time", "1", "--restarts", "2", "--save-seconds", "10", "--",
          "sh", "work.sh", "{{ steps }}")
    job = json.loads(gw_ok(home, "recipe", "run", "resumable", "--sweep", "steps=65,70",
                           "--json"))
    final = _wait_final(home, job["id"], 420)
    assert final["state"] == "COMPLETED", final
    for task in (0, 1):
        mine = [a for a in final["attempts"] if a["task"] == task]
        assert [a["attempt"] for a in mine] == [1, 2], final["attempts"]
        assert [a["end"] for a in mine] == ["time limit: requeued", "exit 0"], mine
    models = [t["model"] for t in final["tasks"]]
    assert len(set(models)) == 2 and None not in models, final["tasks"]
    for ref, steps in zip(models, (65, 70), strict=True):
        made = Path(json.loads(gw_ok(home, "model", "show", ref, "--json"))["path"])
        assert (made / "result").read_text() == f"finished after {steps} steps\n"
        assert (made / "starts").read_text().split()[1].startswith("2:1:")
