"""Faults around harvest: a watcher killed again and again, a full filesystem, a crowd of
submissions. Job states are read from the database where gw commands would hide a fault
by ingesting themselves."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import gw_executable, run_gw
from tests.integration.conftest import gw_ok


def make_home(env, base: Path, home: Path) -> dict[str, str]:
    from tests.support.images import busybox_rootfs, make_archive

    env = {**env, "GW_HOME": str(home)}
    archive = make_archive(base / "bb.tar", [busybox_rootfs(base / "rootfs")],
                           env={"PATH": "/bin"}, workdir="/", cmd=["sh"])
    gw_ok(env, "image", "import", str(archive), "--name", "bb:v1", "-q")
    (base / "algo").mkdir(exist_ok=True)
    (base / "algo" / "t.sh").write_text('head -c "${2:-1000}" /dev/urandom > /model/blob\n'
                                        'echo "$1" > /model/id\n')
    gw_ok(env, "algo", "push", str(base / "algo"), "--name", "f", "-q")
    return env


def submit(env, *args: str) -> int:
    return json.loads(gw_ok(env, "job", "submit", "--json", "--algo", "f", "--image",
                            "bb:v1", "--mem", "32M", "--", "sh", "t.sh", *args))["id"]


def db_rows(env, query, args=()):
    conn = sqlite3.connect(Path(env["GW_HOME"]) / "gateway.db", timeout=30)
    try:
        return conn.execute(query, args).fetchall()
    finally:
        conn.close()


def test_watcher_killed_and_restarted_while_twenty_jobs_finish(flow_home, tmp_path):
    """Injects: SIGKILL of the watcher every 0.2-1.5 s while twenty jobs end, with
    `gw spool sync` running beside it. Exactly twenty versions, numbered 1..20, one per
    job, nothing left half-made."""
    env = make_home(flow_home, tmp_path, tmp_path / "home")
    # Each job takes two seconds: on two CPUs the twenty end over about twenty seconds,
    # during which the watcher is killed many times.
    ids = [json.loads(gw_ok(env, "job", "submit", "--json", "--algo", "f", "--image",
                            "bb:v1", "--mem", "32M", "--", "sh", "-c",
                            f"sleep 2; sh t.sh job{i} 300000"))["id"] for i in range(20)]
    full_env = {**os.environ, **env}
    rng = random.Random(7)
    kills = syncs = 0
    deadline = time.time() + 240
    sync = None
    while time.time() < deadline:
        harvested = db_rows(env, "SELECT COUNT(*) FROM jobs WHERE model_version_id IS NOT "
                                 "NULL")[0][0]
        if harvested == 20:
            break
        watcher = subprocess.Popen([gw_executable(), "spool", "watch"], env=full_env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if sync is None or sync.poll() is not None:
            sync = subprocess.Popen([gw_executable(), "spool", "sync"], env=full_env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            syncs += 1
        time.sleep(rng.uniform(0.2, 1.5))
        watcher.send_signal(signal.SIGKILL)
        watcher.wait()
        kills += 1
    if sync is not None:
        sync.wait(timeout=60)
    assert kills >= 3, "the watcher was never killed: the test proved nothing"
    gw_ok(env, "spool", "sync")  # whatever the last kill interrupted is finished here
    rows = db_rows(env, """SELECT j.id, v.number FROM jobs j JOIN versions v
                           ON v.id = j.model_version_id ORDER BY v.number""")
    assert sorted(job_id for job_id, _ in rows) == ids
    assert [number for _, number in rows] == list(range(1, 21))
    versions = json.loads(gw_ok(env, "model", "versions", "f", "--json"))
    assert [v["version"] for v in versions] == list(range(1, 21))
    for version in versions:
        assert gw_ok(env, "model", "cat", version["ref"], "id") == \
            f"job{ids.index(version['job_id'])}\n"
    models = Path(env["GW_HOME"]) / "models" / "f"
    assert sorted(p.name for p in models.iterdir()) == sorted(f"v{n}" for n in range(1, 21))
    pending = [p for p in (Path(env["GW_HOME"]) / "spool").glob("*.json")
               if not p.name.startswith(".")]  # a killed watcher's registration may stay
    assert pending == []



def test_watcher_killed_in_the_middle_of_a_large_harvest_then_restarted(flow_home, tmp_path):
    """Injects: SIGKILL of the watcher while it harvests a /model of 20,000 files and
    64 MB (it is walking, checking and sealing the tree), three times, each time a little
    later; then a watcher that is left to finish. At no instant is a version directory
    visible with less than the whole model; in the end there is exactly one version, whole,
    and nothing left in the staging area."""
    env = make_home(flow_home, tmp_path, tmp_path / "home")
    job_id = json.loads(gw_ok(
        env, "job", "submit", "--json", "--algo", "f", "--image", "bb:v1", "--mem", "128M",
        "--", "sh", "-c", "mkdir /model/many && cd /model/many && seq 20000 | xargs touch "
        "&& head -c 64000000 /dev/urandom > /model/blob && echo big > /model/id"))["id"]
    models = Path(env["GW_HOME"]) / "models" / "f"
    incoming = models / f".incoming-job{job_id}"
    full_env = {**os.environ, **env}
    deadline = time.time() + 120
    while not (Path(env["GW_HOME"]) / "spool" / f"{job_id}.json").exists():
        assert time.time() < deadline, "the job never ended"
        time.sleep(0.2)

    def visible_versions_are_whole() -> None:
        for path, count in db_rows(env, "SELECT path, file_count FROM versions"):
            if Path(path).parent == models and Path(path).exists():
                assert count == 20002 and sum(
                    len(files) for _, _, files in os.walk(path)) == count

    kills = 0
    for delay in (0.05, 0.3, 0.8):
        watcher = subprocess.Popen([gw_executable(), "spool", "watch"], env=full_env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while not incoming.exists() and watcher.poll() is None and not (models / "v1").exists():
            time.sleep(0.005)
        time.sleep(delay)
        harvesting = incoming.exists()
        watcher.send_signal(signal.SIGKILL)
        watcher.wait()
        kills += harvesting
        visible_versions_are_whole()
        if not harvesting:
            break
    assert kills >= 1, "no kill landed during the harvest: the test proved nothing"
    watcher = subprocess.Popen([gw_executable(), "spool", "watch"], env=full_env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not db_rows(env, "SELECT 1 FROM jobs WHERE id = ? AND model_version_id IS NOT "
                               "NULL AND state = 'COMPLETED'", (job_id,)):
            assert time.time() < deadline, "not harvested after the restart"
            visible_versions_are_whole()
            time.sleep(0.05)
    finally:
        watcher.send_signal(signal.SIGTERM)
        watcher.communicate(timeout=60)
    [(number, path)] = db_rows(env, "SELECT number, path FROM versions WHERE path LIKE ?",
                               (f"{models}/%",))
    assert number == 1 and sorted(p.name for p in models.iterdir()) == ["v1"]
    visible_versions_are_whole()
    assert (Path(path) / "blob").stat().st_size == 64000000
    assert gw_ok(env, "model", "cat", "f@v1", "id") == "big\n"


@pytest.fixture()
def small_home(tmp_path):
    """A 48 MB tmpfs for the whole home, unmounted after the test."""
    mount = tmp_path / "small"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m,mode=0700", "tmpfs",
                           str(mount)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs (the suite runs as root): {proc.stderr}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_filesystem_during_harvest_keeps_the_result(flow_home, tmp_path, small_home):
    """Injects: the home's filesystem filled up between a job's end and its harvest. Read
    commands keep answering, the job is not failed, and the result is harvested once
    space is back."""
    env = make_home(flow_home, tmp_path, small_home / "home")
    job_id = submit(env, "kept", "2000000")
    spool = small_home / "home" / "spool" / f"{job_id}.json"
    deadline = time.time() + 60
    while not spool.exists() and time.time() < deadline:
        time.sleep(0.2)
    assert spool.exists()
    filler = small_home / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=1M", "count=100"],
                   capture_output=True, check=False)  # stops at ENOSPC
    proc = run_gw("job", "list", "--json", env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "will be retried" in proc.stderr
    [(state, model)] = db_rows(env, "SELECT state, model_version_id FROM jobs WHERE id = ?",
                               (job_id,))
    assert state in ("PENDING", "RUNNING") and model is None  # not failed, not lost
    assert spool.exists()
    filler.unlink()
    job = json.loads(gw_ok(env, "job", "show", str(job_id), "--json"))
    assert job["state"] == "COMPLETED" and job["model"] == "f@v1"
    assert gw_ok(env, "model", "cat", "f@v1", "id") == "kept\n"
    leftovers = [p for p in (small_home / "home" / "models" / "f").iterdir()
                 if p.name != "v1"]
    assert leftovers == []


def test_twenty_submits_at_once_are_each_recorded_once(flow_home, tmp_path):
    """Injects: twenty `gw job submit` processes started together."""
    env = make_home(flow_home, tmp_path, tmp_path / "home")
    full_env = {**os.environ, **env}
    procs = [subprocess.Popen([gw_executable(), "job", "submit", "--json", "--algo", "f",
                               "--image", "bb:v1", "--mem", "32M", "--name", f"crowd-{i}",
                               "--", "sh", "t.sh", f"c{i}"], env=full_env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(20)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outs if err]
    ids = sorted(json.loads(out)["id"] for out, _ in outs)
    assert ids == list(range(ids[0], ids[0] + 20))
    rows = db_rows(env, "SELECT name, slurm_job_id FROM jobs ORDER BY id")
    assert sorted(name for name, _ in rows) == sorted(f"crowd-{i}" for i in range(20))
    assert len({slurm for _, slurm in rows}) == 20 and all(s for _, s in rows)
    for job_id in ids:  # let them finish, so the cluster is free for what follows
        deadline = time.time() + 300
        while time.time() < deadline:
            state = json.loads(gw_ok(env, "job", "show", str(job_id), "--json"))["state"]
            if state not in ("PENDING", "RUNNING", "SUBMITTING"):
                break
            time.sleep(1)
        assert state == "COMPLETED"
