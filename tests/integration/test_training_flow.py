"""The core flow on the real local Slurm, in a real container (bubblewrap over a SIF)."""

from __future__ import annotations

import json
import tarfile
import time
from pathlib import Path

import pytest

from tests.conftest import run_gw
from tests.integration.conftest import busybox_layers, gw_ok

PROBE = r"""#!/bin/sh
# Records what the container looks like into /model.
pwd > /model/pwd
env | sort > /model/env
for a in "$@"; do printf '%s|END|' "$a"; done > /model/args
printf '%s' "$GW_JOB_NAME" > /model/job_name
printf '%s' "$MSG" > /model/msg
if touch /dataset/newfile 2>/dev/null; then echo writable
else echo readonly; fi > /model/dataset_ro
cat /dataset/data.txt > /model/data_copy
if [ -e /etc/removed.txt ]; then echo present; else echo absent; fi > /model/whiteout
ls /opt/dir > /model/opaque
df -k /dev/shm | tail -1 > /model/shm
mkdir -p output && echo "outputs here" > output/result.txt
echo "probe done"
"""

HOSTILE = "it's \"q\" $(touch /tmp/gw-pwned) `touch /tmp/gw-pwned2` \nnew line;  two  spaces"
# A job name is one line (names hold no control character); the rest of HOSTILE stays.
HOSTILE_NAME = HOSTILE.replace("\n", " ")


@pytest.fixture(scope="module")
def flow(flow_home, tmp_path_factory):
    """An imported image, a pushed algorithm and dataset."""
    from tests.support.images import make_archive

    base = tmp_path_factory.mktemp("inputs")
    archive = make_archive(base / "busybox.tar", busybox_layers(base),
                           layout="docker-legacy",
                           env={"PATH": "/bin", "GREETING": "hello from the image"},
                           workdir="/", cmd=["sh"])
    gw_ok(flow_home, "image", "import", str(archive), "--name", "busybox:v1", "-q")
    algo = base / "algo"
    algo.mkdir()
    (algo / "probe.sh").write_text(PROBE)
    (algo / "probe.sh").chmod(0o755)
    (algo / "fail.sh").write_text("#!/bin/sh\necho partial > /model/w\necho failing >&2\n"
                                  "exit 3\n")
    (algo / "train.sh").write_text("#!/bin/sh\necho \"weights $1\" > /model/weights.txt\n"
                                   "head -c 100000 /dev/urandom > /model/blob.bin\n")
    gw_ok(flow_home, "algo", "push", str(algo), "--name", "probe", "-q")
    data = base / "data"
    data.mkdir()
    (data / "data.txt").write_text("dataset content\n")
    gw_ok(flow_home, "data", "push", str(data), "--name", "toy", "-q")
    return {"env": flow_home, "base": base, "algo": algo}


def submit(env, *args: str, check: bool = True):
    proc = run_gw("job", "submit", "--json", *args, env=env, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"submit failed ({proc.returncode}): {proc.stderr}")
    return proc


def job_json(env, job_id):
    return json.loads(gw_ok(env, "job", "show", str(job_id), "--json"))


def test_probe_job_sees_the_standard_container(flow):
    env = flow["env"]
    proc = submit(env, "--algo", "probe", "--image", "busybox:v1", "--data", "toy",
                  "--name", HOSTILE_NAME, "--env", f"MSG={HOSTILE}", "--shm", "32M",
                  "--mem", "256M", "--time", "0:05:00", "--wait",
                  "--", "sh", "probe.sh", HOSTILE, "plain")
    job = json.loads(proc.stdout)
    assert job["state"] == "COMPLETED", job
    assert job["exit_code"] == 0 and job["node"] and job["started"] and job["ended"]
    assert job["algo"] == "probe@v1" and job["dataset"] == "toy@v1"
    model = job["model"]
    assert model == "probe@v1"

    def cat(path: str) -> str:
        return gw_ok(env, "model", "cat", model, path)

    assert cat("pwd").strip() == "/code"
    assert "GREETING=hello from the image" in cat("env")
    assert cat("args") == f"{HOSTILE}|END|plain|END|"
    assert cat("job_name") == HOSTILE_NAME
    assert cat("msg") == HOSTILE
    assert not Path("/tmp/gw-pwned").exists() and not Path("/tmp/gw-pwned2").exists()
    assert cat("dataset_ro").strip() == "readonly"
    assert cat("data_copy") == "dataset content\n"
    assert cat("whiteout").strip() == "absent"
    assert cat("opaque").split() == ["c"]
    shm_kib = int(cat("shm").split()[1])
    assert 30000 <= shm_kib <= 33000
    # lineage
    shown = json.loads(gw_ok(env, "model", "show", model, "--json"))
    for key in ("job_id", "algo", "image", "image_digest", "dataset", "command", "resources",
                "node", "started", "ended"):
        assert shown[key], key
    assert shown["image_digest"].startswith("sha256:")
    assert shown["command"] == ["sh", "probe.sh", HOSTILE, "plain"]
    # outputs: what the job left in /code, and the log; the stored version is unchanged
    out = flow["base"] / "outputs.tar.gz"
    gw_ok(env, "job", "outputs", str(job["id"]), "-o", str(out))
    with tarfile.open(out) as tar:
        names = tar.getnames()
        assert "code/output/result.txt" in names
        assert any(n.startswith("logs/slurm-") for n in names)
        log = tar.extractfile(next(n for n in names if n.startswith("logs/slurm-"))).read()
        assert b"probe done" in log
    stored = json.loads(gw_ok(env, "algo", "show", "probe@v1", "--json"))
    assert not (Path(stored["path"]) / "output").exists()
    # the script that was submitted
    assert gw_ok(env, "job", "script", str(job["id"])) == Path(job["script"]).read_text()
    assert "probe done" in gw_ok(env, "job", "logs", str(job["id"]))


def test_failed_job_makes_no_model(flow):
    env = flow["env"]
    before = gw_ok(env, "model", "list", "--json")
    proc = submit(env, "--algo", "probe", "--image", "busybox:v1", "--model-name", "failing",
                  "--wait", "--", "sh", "fail.sh", check=False)
    assert proc.returncode == 1
    job = json.loads(proc.stdout)
    assert job["state"] == "FAILED" and job["exit_code"] == 3
    assert "code 3" in job["reason"] and job["model"] is None
    assert gw_ok(env, "model", "list", "--json") == before
    assert "failing" in gw_ok(env, "job", "logs", str(job["id"]))


def test_two_runs_make_v1_and_v2_and_download_matches(flow):
    env = flow["env"]
    refs = []
    for run in ("one", "two"):
        job = json.loads(submit(env, "--algo", "probe", "--image", "busybox:v1",
                                "--model-name", "trained", "--wait", "--", "sh", "train.sh",
                                run).stdout)
        refs.append(job["model"])
    assert refs == ["trained@v1", "trained@v2"]
    versions = json.loads(gw_ok(env, "model", "versions", "trained", "--json"))
    assert [v["version"] for v in versions] == [1, 2]
    assert gw_ok(env, "model", "cat", "trained@v1", "weights.txt") == "weights one\n"
    out = flow["base"] / "trained-v2.tar.gz"
    gw_ok(env, "model", "download", "trained@v2", "-o", str(out))
    stored = Path(versions[1]["path"])
    with tarfile.open(out) as tar:
        blob = tar.extractfile("trained-v2/blob.bin").read()
    assert blob == (stored / "blob.bin").read_bytes() and len(blob) == 100000
    files = json.loads(gw_ok(env, "model", "files", "trained@v2", "--json"))
    assert sorted(f["path"] for f in files) == ["blob.bin", "weights.txt"]


def test_cancel_running_job(flow):
    env = flow["env"]
    job = json.loads(submit(env, "--algo", "probe", "--image", "busybox:v1",
                            "--model-name", "cancelled", "--", "sleep", "300").stdout)
    deadline = time.time() + 60
    while job_json(env, job["id"])["state"] != "RUNNING" and time.time() < deadline:
        time.sleep(0.5)
    gw_ok(env, "job", "cancel", str(job["id"]))
    deadline = time.time() + 60
    while job_json(env, job["id"])["state"] in ("PENDING", "RUNNING") and time.time() < deadline:
        time.sleep(0.5)
    final = job_json(env, job["id"])
    assert final["state"] == "CANCELLED", final
    assert final["model"] is None
    assert run_gw("model", "versions", "cancelled", env=env, check=False).returncode == 2


def test_requests_no_partition_can_hold_are_refused_before_sbatch(flow):
    env = flow["env"]
    jobs_before = gw_ok(env, "job", "list", "--json")
    for flags, message in ((["--gpus", "1"], "--gpus asks for 1"),
                           (["--mem", "100T"], "--mem + --shm asks for"),
                           (["--cpus", "512"], "--cpus asks for 512"),
                           (["--time", "25:99"], "invalid time"),
                           (["--mem", "lots"], "invalid --mem")):
        proc = submit(env, "--algo", "probe", "--image", "busybox:v1", *flags, "--", "true",
                      check=False)
        assert proc.returncode == 2, proc.stderr
        assert message in proc.stderr and proc.stderr.count("\n") == 1
    for flags, message in ((["--algo", "nope"], "no algorithm named 'nope'"),
                           (["--algo", "probe@v9"], "has no version v9"),
                           (["--image", "nope:v1"], "no image named 'nope:v1'"),
                           (["--data", "nope"], "no dataset named 'nope'")):
        base = {"--algo": "probe", "--image": "busybox:v1"}
        base.update(dict(zip(flags[::2], flags[1::2], strict=False)))
        args = [x for kv in base.items() for x in kv]
        proc = submit(env, *args, "--", "true", check=False)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert gw_ok(env, "job", "list", "--json") == jobs_before
    home = Path(env["GW_HOME"])
    assert sorted(p.name for p in (home / "jobs").iterdir()) == \
        sorted(str(j["id"]) for j in json.loads(jobs_before))


def test_logs_follow_until_the_job_ends(flow):
    env = flow["env"]
    job = json.loads(submit(env, "--algo", "probe", "--image", "busybox:v1", "--model-name",
                            "followed", "--", "sh", "-c",
                            "for i in 1 2 3; do echo line $i; sleep 1; done").stdout)
    proc = run_gw("job", "logs", str(job["id"]), "--follow", env=env)
    assert proc.stdout.splitlines()[-3:] == ["line 1", "line 2", "line 3"]
    assert job_json(env, job["id"])["state"] == "COMPLETED"


def test_two_syncs_at_once_harvest_each_job_once(flow):
    import os
    import subprocess

    from tests.conftest import gw_executable

    env = flow["env"]
    ids = [json.loads(submit(env, "--algo", "probe", "--image", "busybox:v1", "--model-name",
                             "concurrent", "--", "sh", "train.sh", str(i)).stdout)["id"]
           for i in range(3)]
    spool = Path(env["GW_HOME"]) / "spool"
    deadline = time.time() + 120
    while not all((spool / f"{i}.json").exists() for i in ids) and time.time() < deadline:
        time.sleep(0.5)
    full_env = {**os.environ, **env}
    procs = [subprocess.Popen([gw_executable(), "spool", "sync", "--json"], env=full_env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    ingested = sorted(i for out, _err in outputs for i in json.loads(out)["finished"])
    assert ingested == sorted(ids)
    versions = json.loads(gw_ok(env, "model", "versions", "concurrent", "--json"))
    assert sorted(v["job_id"] for v in versions) == sorted(ids)
    assert [v["version"] for v in versions] == [1, 2, 3]
