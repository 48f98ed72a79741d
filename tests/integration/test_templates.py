"""Job templates, sweeps as one job array, and exact reruns, on the real local Slurm with
a real container."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import run_gw
from tests.integration.conftest import gw_ok, image_and_algo

pytestmark = pytest.mark.container


@pytest.fixture(scope="module")
def home(flow_home, busybox_archive, tmp_path_factory):
    """A home with a busybox image and an algorithm whose script writes its arguments."""
    base = tmp_path_factory.mktemp("templates")
    env = {**flow_home, "GW_HOME": str(base / "home")}
    return image_and_algo(env, busybox_archive, base, "tr", {"train.sh": (
        'echo "$*" > /model/args\n'
        'echo "task=${GW_TASK:-none}" >> /model/args\n'
        'echo out > /code/left-by-$$\n'
        'case "$1" in fail) exit 3;; esac\n')})


def wait_done(env, job_id: int, timeout: float = 180) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = json.loads(gw_ok(env, "job", "show", str(job_id), "--json"))
        if job["state"] not in ("SUBMITTING", "PENDING", "RUNNING", "UNKNOWN"):
            return job
        time.sleep(1)
    raise AssertionError(f"job {job_id} did not end: {job}")


def normalised_script(env, job_id: int) -> str:
    """The job's script without what differs between any two jobs (id, name, paths)."""
    job = json.loads(gw_ok(env, "job", "show", str(job_id), "--json"))
    text = gw_ok(env, "job", "script", str(job_id))
    text = text.replace(job["job_dir"], "JOBDIR").replace(job["name"], "NAME")
    for pattern in (rf"GW_JOB_ID={job_id}\b", rf"(gw:[0-9a-f]+:){job_id}\b",
                    rf"(job ){job_id}( of home)"):
        text = re.sub(pattern, lambda m: "".join(g or "" for g in m.groups()) + "<ID>", text)
    return text


def test_template_saved_from_a_job_renders_the_same_script_except_overrides(home):
    first = json.loads(gw_ok(home, "job", "submit", "--json", "--algo", "tr", "--image",
                             "bb:v1", "--mem", "64M", "--name", "orig", "--", "sh",
                             "train.sh", "a b", "$(touch /tmp/x)"))
    wait_done(home, first["id"])
    saved = json.loads(gw_ok(home, "template", "save", "again", "--from-job",
                             str(first["id"]), "--json"))
    assert saved["options"]["algo"] == "tr" and saved["command"][-1] == "$(touch /tmp/x)"
    same = json.loads(gw_ok(home, "template", "run", "again", "--json"))
    job = wait_done(home, same["id"])
    assert job["state"] == "COMPLETED" and job["template"] == "again"
    assert job["overrides"] == {} and job["origin"] == "template"
    assert normalised_script(home, same["id"]) == normalised_script(home, first["id"])
    assert gw_ok(home, "model", "cat", job["model"], "args") == "a b $(touch /tmp/x)\n" \
        "task=none\n"
    # Overridden: memory and the time limit; the scripts differ in exactly those lines.
    other = json.loads(gw_ok(home, "template", "run", "again", "--mem", "96M", "--time",
                             "20:00", "--json"))
    job = wait_done(home, other["id"])
    assert job["overrides"] == {"mem": "96M", "time": "20:00"}
    before = normalised_script(home, first["id"]).splitlines()
    after = normalised_script(home, other["id"]).splitlines()
    changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    # (Slurm gets --mem plus the 64M /dev/shm of the default --shm)
    assert changed == [("#SBATCH --mem=128M", "#SBATCH --mem=160M"),
                       ("#SBATCH --time=0-01:00:00", "#SBATCH --time=0-00:20:00")], changed


def test_placeholders_are_filled_literally_and_a_missing_value_is_refused(home):
    gw_ok(home, "template", "save", "ph", "--algo", "tr", "--image", "bb:v1", "--mem", "64M",
          "--", "sh", "train.sh", "--lr={{ lr }}", "{{ note }}")
    shown = json.loads(gw_ok(home, "template", "show", "ph", "--json"))
    assert shown["placeholders"] == ["lr", "note"]
    jobs_before = gw_ok(home, "job", "list", "--json")
    missing = run_gw("template", "run", "ph", "--set", "lr=0.1", env=home, check=False)
    assert missing.returncode == 2 and "{{ note }}" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    unknown = run_gw("template", "run", "ph", "--set", "lr=1", "--set", "note=x", "--set",
                     "typo=2", env=home, check=False)
    assert unknown.returncode == 2 and "typo" in unknown.stderr
    assert gw_ok(home, "job", "list", "--json") == jobs_before  # nothing submitted
    hostile = "'; rm -rf / #$(id)`id`\"\n{{ lr }}"
    run = json.loads(gw_ok(home, "template", "run", "ph", "--set", "lr=0.01", "--set",
                           f"note={hostile}", "--json"))
    job = wait_done(home, run["id"])
    assert job["state"] == "COMPLETED" and job["set"] == {"lr": "0.01", "note": hostile}
    assert gw_ok(home, "model", "cat", job["model"], "args") == \
        f"--lr=0.01 {hostile}\ntask=none\n"


def test_template_bad_input_leaves_nothing(home):
    db_before = gw_ok(home, "template", "list", "--json")
    for args in (["save", "bad name", "--algo", "tr", "--image", "bb:v1", "--", "true"],
                 ["save", "noimage", "--algo", "tr", "--", "true"],
                 ["save", "nocmd", "--algo", "tr", "--image", "bb:v1"],
                 ["run", "nosuch"],
                 ["show", "nosuch"],
                 ["rm", "nosuch"],
                 ["save", "x", "--from-job", "999999", "--", "true"]):
        proc = run_gw("template", *args, env=home, check=False)
        assert proc.returncode == 2, (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1, (args, proc.stderr)
    assert gw_ok(home, "template", "list", "--json") == db_before
    gw_ok(home, "template", "save", "dup", "--algo", "tr", "--image", "bb:v1", "--", "true")
    again = run_gw("template", "save", "dup", "--algo", "tr", "--image", "bb:v1", "--",
                   "false", env=home, check=False)
    assert again.returncode == 2 and "exists" in again.stderr
    gw_ok(home, "template", "rm", "dup")
    assert "dup" not in gw_ok(home, "template", "list")


def test_sweep_is_one_array_job_with_a_model_version_per_task(home):
    gw_ok(home, "template", "save", "sw", "--algo", "tr", "--image", "bb:v1", "--mem", "64M",
          "--model-name", "swept", "--", "sh", "train.sh", "{{ lr }}", "{{ bs }}")
    run = json.loads(gw_ok(home, "template", "run", "sw", "--sweep", "lr=0.1,0.01",
                           "--sweep", "bs=32,64", "--max-parallel", "2", "--json"))
    script = gw_ok(home, "job", "script", str(run["id"]))
    assert "#SBATCH --array=0-3%2" in script
    job = wait_done(home, run["id"])
    # One Slurm job: an array of four tasks (sacct lists them under one array id).
    expected = [f"{job['slurm_job_id']}_{i}" for i in range(4)]
    deadline, listed = time.time() + 60, []
    while time.time() < deadline and listed != expected:  # accounting may lag a little
        sacct = subprocess.run(["sacct", "-X", "-n", "-P", "-j", job["slurm_job_id"], "-o",
                                "JobID,State"], capture_output=True, text=True, check=True,
                               env={**os.environ, **home}).stdout.split()
        listed = sorted(line.split("|")[0] for line in sacct)
        time.sleep(1)
    assert listed == expected
    assert job["state"] == "COMPLETED" and job["task_count"] == 4
    assert job["task_states"] == {"COMPLETED": 4}
    tasks = {t["task"]: t for t in job["tasks"]}
    assert [tasks[i]["params"] for i in range(4)] == [
        {"lr": "0.1", "bs": "32"}, {"lr": "0.1", "bs": "64"},
        {"lr": "0.01", "bs": "32"}, {"lr": "0.01", "bs": "64"}]
    versions = json.loads(gw_ok(home, "model", "versions", "swept", "--json"))
    assert len(versions) == 4
    for index in range(4):
        ref = tasks[index]["model"]
        shown = json.loads(gw_ok(home, "model", "show", ref, "--json"))
        lineage = shown.get("lineage", shown)
        assert lineage["params"] == tasks[index]["params"] and lineage["job_id"] == run["id"]
        assert lineage["task"] == index
        params = tasks[index]["params"]
        assert gw_ok(home, "model", "cat", ref, "args") == \
            f"{params['lr']} {params['bs']}\ntask={index}\n"
    # Each task had its own /code: what one left there is not in another's.
    job_dir = Path(job["job_dir"])
    left = [sorted(p.name for p in (job_dir / "tasks" / str(i) / "code").glob("left-by-*"))
            for i in range(4)]
    assert all(len(names) == 1 for names in left), left
    out = Path(job_dir.parent.parent.parent) / "sweep-outputs.tar.gz"
    gw_ok(home, "job", "outputs", str(run["id"]), "-o", str(out))
    import tarfile

    with tarfile.open(out) as tar:
        names = tar.getnames()
    assert all(f"tasks/{i}/code/train.sh" in names for i in range(4)), names
    assert sum(1 for n in names if n.startswith("logs/slurm-")) == 4


def test_a_failed_task_makes_no_version_and_stops_no_other(home):
    gw_ok(home, "template", "save", "swf", "--algo", "tr", "--image", "bb:v1", "--mem",
          "64M", "--model-name", "swept-f", "--", "sh", "train.sh", "{{ lr }}")
    run = json.loads(gw_ok(home, "template", "run", "swf", "--sweep", "lr=fail,0.1,fail",
                           "--json"))
    job = wait_done(home, run["id"])
    assert job["state"] == "FAILED" and "2 FAILED" in job["reason"]
    assert job["task_states"] == {"COMPLETED": 1, "FAILED": 2}
    tasks = job["tasks"]
    assert tasks[0]["model"] is None and "exited with code 3" in tasks[0]["reason"]
    assert tasks[1]["state"] == "COMPLETED" and tasks[1]["model"] == "swept-f@v1"
    assert [v["version"] for v in json.loads(
        gw_ok(home, "model", "versions", "swept-f", "--json"))] == [1]


def test_rerun_uses_the_same_versions_and_image_digest(home, tmp_path):
    from tests.support.images import busybox_rootfs, make_archive

    first = json.loads(gw_ok(home, "job", "submit", "--json", "--algo", "tr", "--image",
                             "bb:v1", "--mem", "64M", "--env", "SECRET=s3 cret", "--",
                             "sh", "train.sh", "original"))
    earlier = wait_done(home, first["id"])
    # Since then: a new algorithm version, and the tag bb:v1 moved to another image.
    (tmp_path / "algo2").mkdir()
    (tmp_path / "algo2" / "train.sh").write_text('echo "v2 $*" > /model/args\n')
    gw_ok(home, "algo", "push", str(tmp_path / "algo2"), "--name", "tr", "-q")
    archive = make_archive(tmp_path / "bb2.tar", [busybox_rootfs(tmp_path / "rootfs")],
                           env={"PATH": "/bin", "OTHER": "1"}, workdir="/", cmd=["sh"])
    gw_ok(home, "image", "import", str(archive), "--name", "bb:v1", "-q")
    moved = json.loads(gw_ok(home, "image", "show", "bb:v1", "--json"))
    assert moved["digest"] != earlier["image_digest"]

    again = json.loads(gw_ok(home, "job", "rerun", str(first["id"]), "--json"))
    job = wait_done(home, again["id"])
    assert job["rerun_of"] == first["id"] and job["origin"] == "rerun"
    assert (job["algo"], job["image_digest"], job["command"], job["resources"]) == (
        earlier["algo"], earlier["image_digest"], earlier["command"], earlier["resources"])
    assert job["env"] == ["SECRET"]
    assert gw_ok(home, "model", "cat", job["model"], "args").startswith("original\n")
    # An override is recorded, and only it changes.
    newer = json.loads(gw_ok(home, "job", "rerun", str(first["id"]), "--algo", "tr",
                             "--json"))
    job = wait_done(home, newer["id"])
    assert job["overrides"] == {"algo": "tr"} and job["algo"] != earlier["algo"]
    assert job["image_digest"] == earlier["image_digest"]
    assert gw_ok(home, "model", "cat", job["model"], "args") == "v2 original\n"
    missing = run_gw("job", "rerun", "999999", env=home, check=False)
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1


def test_cancelled_sweep_keeps_what_finished_and_cancels_the_rest(home):
    """Tasks that write no spool file (pending when cancelled) get their end from sacct;
    the one running is killed; the one that finished keeps its model version."""
    gw_ok(home, "template", "save", "slow", "--algo", "tr", "--image", "bb:v1", "--mem",
          "64M", "--model-name", "slow", "--", "sh", "-c", "sleep {{ t }}; sh train.sh {{ t }}")
    run = json.loads(gw_ok(home, "template", "run", "slow", "--sweep", "t=0,60,60",
                           "--max-parallel", "1", "--json"))
    deadline = time.time() + 120
    while time.time() < deadline:
        job = json.loads(gw_ok(home, "job", "show", str(run["id"]), "--json"))
        states = [t["state"] for t in job["tasks"]]
        if states[0] == "COMPLETED" and states[1] == "RUNNING":
            break
        time.sleep(0.5)
    assert states[:2] == ["COMPLETED", "RUNNING"], job
    gw_ok(home, "job", "cancel", str(run["id"]))
    job = wait_done(home, run["id"])
    assert job["state"] == "CANCELLED", job
    assert [t["state"] for t in job["tasks"]] == ["COMPLETED", "CANCELLED", "CANCELLED"]
    assert job["tasks"][0]["model"] == "slow@v1"
    assert [t["model"] for t in job["tasks"][1:]] == [None, None]
    assert [v["version"] for v in json.loads(gw_ok(home, "model", "versions", "slow",
                                                   "--json"))] == [1]
    log = gw_ok(home, "job", "logs", str(run["id"]), "--task", "0")
    assert log is not None
    bad = run_gw("job", "logs", str(run["id"]), "--task", "7", env=home, check=False)
    assert bad.returncode == 2 and "no task 7" in bad.stderr


def test_rendered_script_run_with_plain_sbatch_is_recorded_and_harvested(home, tmp_path):
    script = tmp_path / "train.sbatch"
    gw_ok(home, "job", "render", "--algo", "tr@v1", "--image", "bb:v1", "--mem", "64M",
          "--model-name", "rendered", "-o", str(script), "--", "sh", "train.sh", "by sbatch")
    text = script.read_text()
    assert text.startswith("#!/bin/bash") and "#SBATCH --comment=gw:" in text
    # A person edits around it: a line of their own before the container runs.
    script.write_text(text.replace("set -e\n", "set -e\necho 'my own set-up'\n", 1))
    before = {j["id"] for j in json.loads(gw_ok(home, "job", "list", "--json"))}
    slurm_ids = []
    for _ in range(2):  # the same script, run twice: two jobs, two versions
        out = subprocess.run(["sbatch", "--parsable", str(script)], capture_output=True,
                             text=True, check=True, cwd=tmp_path,
                             env={**os.environ, **home}).stdout
        slurm_ids.append(out.strip().split(";")[0])
    deadline = time.time() + 120
    runs: list[dict] = []
    while time.time() < deadline:
        runs = [j for j in json.loads(gw_ok(home, "job", "list", "--json"))
                if j["id"] not in before]
        if len(runs) == 2 and all(j["state"] == "COMPLETED" for j in runs):
            break
        time.sleep(1)
    assert sorted(j["slurm_job_id"] for j in runs) == sorted(slurm_ids), runs
    for run in runs:
        job = json.loads(gw_ok(home, "job", "show", str(run["id"]), "--json"))
        assert job["state"] == "COMPLETED" and job["origin"] == "sbatch", job
        assert gw_ok(home, "model", "cat", job["model"], "args").startswith("by sbatch\n")
        assert "my own set-up" in gw_ok(home, "job", "logs", str(run["id"]))
    assert sorted(v["version"] for v in json.loads(
        gw_ok(home, "model", "versions", "rendered", "--json"))) == [1, 2]
    # Bad input renders nothing and leaves nothing.
    renders = sorted(p.name for p in (Path(home["GW_HOME"]) / "renders").iterdir())
    for args in (["--image", "nosuch:v1"], ["--image", "bb:v1", "--mem", "1G", "--cpus",
                                                   "999"], ["--image", "bb:v1", "-o",
                                                            str(tmp_path)]):
        proc = run_gw("job", "render", "--algo", "tr", *args, "--", "true", env=home,
                      check=False)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, \
            proc.stderr
    assert sorted(p.name for p in (Path(home["GW_HOME"]) / "renders").iterdir()) == renders


def test_own_sbatch_templates_from_the_user_and_the_site(home, tmp_path):
    mine = tmp_path / "mine.sh.j2"
    mine.write_text('{% extends "sbatch/training.sh.j2" %}\n'
                    '{% block header %}\n#SBATCH --nice=10\n{% endblock %}\n'
                    '{% block prologue %}\necho "user prologue on $(hostname)"\n'
                    '{{ super() }}\n{% endblock %}\n')
    gw_ok(home, "template", "import", str(mine), "--name", "mine")
    site = tmp_path / "site-templates"
    site.mkdir()
    (site / "sitewide.sh.j2").write_text(
        '{% extends "sbatch/training.sh.j2" %}\n{% block epilogue %}\n{{ super() }}\n'
        'echo "site epilogue"\n{% endblock %}\n')
    (tmp_path / "site.toml").write_text(f'sbatch_templates = "{site}"\n')
    env = {**home, "GW_SITE_CONFIG": str(tmp_path / "site.toml")}
    listed = {t["name"]: t["source"] for t in json.loads(
        gw_ok(env, "template", "scripts", "--json"))}
    assert listed == {"mine": "user", "sitewide": "site"}
    for name, line in (("mine", "user prologue on"), ("sitewide", "site epilogue")):
        run = json.loads(gw_ok(env, "job", "submit", "--json", "--algo", "tr@v1", "--image",
                               "bb:v1", "--mem", "64M", "--template", name, "--", "sh",
                               "train.sh", name))
        job = wait_done(env, run["id"])
        assert job["state"] == "COMPLETED", job
        assert gw_ok(env, "model", "cat", job["model"], "args").startswith(f"{name}\n")
        assert line in gw_ok(env, "job", "logs", str(run["id"]))
    assert "#SBATCH --nice=10" in gw_ok(env, "job", "script", str(run["id"] - 1))
    # A template that would break the spool trap is refused, and nothing is kept.
    bad = tmp_path / "bad.sh.j2"
    bad.write_text('{% extends "sbatch/training.sh.j2" %}\n{% block prologue %}\n'
                   'trap - EXIT\n{{ super() }}\n{% endblock %}\n')
    proc = run_gw("template", "import", str(bad), "--name", "bad", env=env, check=False)
    assert proc.returncode == 2 and "trap" in proc.stderr
    assert "bad" not in gw_ok(env, "template", "scripts")
    # A site template broken after the fact refuses the submission; no job is left.
    (site / "sitewide.sh.j2").write_text('{% extends "sbatch/training.sh.j2" %}\n'
                                         '{% block command %}exec {{ container.run }}'
                                         '{% endblock %}\n')
    jobs = gw_ok(env, "job", "list", "--json")
    proc = run_gw("job", "submit", "--algo", "tr", "--image", "bb:v1", "--template",
                  "sitewide", "--", "true", env=env, check=False)
    assert proc.returncode == 2 and "exec" in proc.stderr
    assert gw_ok(env, "job", "list", "--json") == jobs
    nosuch = run_gw("job", "submit", "--algo", "tr", "--image", "bb:v1", "--template",
                    "nosuch", "--", "true", env=env, check=False)
    assert nosuch.returncode == 2 and "no sbatch template" in nosuch.stderr
