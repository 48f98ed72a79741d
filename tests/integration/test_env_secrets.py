"""`--env` values are secrets: on no process's command line, in no file others can read.

Runs a real job on the local cluster with a random token and looks for it while the job
runs: in every /proc/*/cmdline (login node and compute node are one machine here), and in
every file under the home, the cluster's state and /tmp that is readable by group or
others. Then the container lines alone under real bubblewrap: a value full of shell
syntax reaches the container byte for byte and no command line; and node scratch
directories that another user planted first block nothing.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import subprocess
import time
from pathlib import Path

import pytest

from containers.runtime import ContainerSpec, Mount, container_script, write_env_file
from tests.conftest import run_gw
from tests.integration.conftest import gw_ok

pytestmark = pytest.mark.container


def cmdlines_holding(value: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if value.encode() in cmdline:
                found.append(cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return found


def shared_files_holding(value: str, roots: list[Path]) -> list[str]:
    """Files readable by group or others that contain ``value``."""
    found = []
    for root in roots:
        for dirpath, _dirs, files in os.walk(root):
            for name in files:
                path = Path(dirpath) / name
                try:
                    info = path.lstat()
                    if (not stat.S_ISREG(info.st_mode) or info.st_size > 10 << 20
                            or not info.st_mode & 0o044):
                        continue
                    if value.encode() in path.read_bytes():
                        found.append(f"{path} ({oct(info.st_mode & 0o777)})")
                except OSError:
                    continue
    return found


@pytest.mark.parametrize("how", ["NAME=VALUE", "NAME"])
def test_env_secret_reaches_the_job_and_nothing_else(flow_home, tmp_path, how):
    from tests.support.images import busybox_rootfs, make_archive

    env = flow_home
    archive = make_archive(tmp_path / "bb.tar", [busybox_rootfs(tmp_path / "rootfs")],
                           env={"PATH": "/bin"}, workdir="/", cmd=["sh"])
    gw_ok(env, "image", "import", str(archive), "--name", "bb:v1", "-q")
    (tmp_path / "algo").mkdir()
    (tmp_path / "algo" / "use.sh").write_text(
        'printf %s "$TOKEN" > /model/seen\nsleep 6\n')
    gw_ok(env, "algo", "push", str(tmp_path / "algo"), "--name", "secretive", "-q")
    token = f"tok{secrets.token_hex(16)}"
    if how == "NAME=VALUE":
        proc = run_gw("job", "submit", "--json", "--algo", "secretive", "--image", "bb:v1",
                      "--mem", "64M", "--env", f"TOKEN={token}", "--", "sh", "use.sh", env=env)
    else:
        proc = run_gw("job", "submit", "--json", "--algo", "secretive", "--image", "bb:v1",
                      "--mem", "64M", "--env", "TOKEN", "--", "sh", "use.sh",
                      env={**env, "TOKEN": token})
    job = json.loads(proc.stdout)
    seen_running = False
    deadline = time.time() + 60
    while time.time() < deadline:
        state = json.loads(gw_ok(env, "job", "show", str(job["id"]), "--json"))
        if state["state"] == "RUNNING" and Path(state["job_dir"], "model", "seen").exists():
            seen_running = True
            assert cmdlines_holding(token) == []
            break
        if state["state"] not in ("PENDING", "RUNNING", "SUBMITTING"):
            break
        time.sleep(0.3)
    assert seen_running, "the job never ran"
    roots = [Path(env["GW_HOME"]), Path("/var/lib/gw-cluster"), Path("/tmp")]
    assert shared_files_holding(token, roots) == []
    done = json.loads(gw_ok(env, "job", "show", str(job["id"]), "--json"))
    assert done["env"] == ["TOKEN"] and token not in json.dumps(done)
    final = None
    while time.time() < deadline + 60:
        final = json.loads(gw_ok(env, "job", "show", str(job["id"]), "--json"))
        if final["state"] not in ("PENDING", "RUNNING", "SUBMITTING"):
            break
        time.sleep(0.5)
    assert final and final["state"] == "COMPLETED", final
    assert gw_ok(env, "model", "cat", final["model"], "seen") == token
    env_file = Path(final["job_dir"]) / "container.env"
    assert env_file.stat().st_mode & 0o777 == 0o600


# -- the container lines alone, under real bubblewrap ------------------------------------

NOBODY = 65534


@pytest.fixture(scope="module")
def busybox_sif(tmp_path_factory):
    from containers.archive import read_archive
    from containers.build import build_sif_from_archive
    from tests.support.images import busybox_rootfs, make_archive

    tmp = tmp_path_factory.mktemp("sif")
    archive = read_archive(make_archive(tmp / "bb.tar", [busybox_rootfs(tmp / "rootfs")],
                                        env={"PATH": "/bin"}, workdir="/", cmd=["sh"]))
    return build_sif_from_archive(archive, tmp / "bb.sif", tmp / "work")


def start_job(base: Path, sif, scratch_parent: Path, command: tuple[str, ...],
              env: dict[str, str]) -> tuple[subprocess.Popen, Path, str]:
    """Write the env file as the login node does, then run setup, run and teardown as the
    job template does (umask 077, teardown from the EXIT trap). Returns the process, the
    model directory and the script text."""
    (base / "code").mkdir(parents=True)
    (base / "model").mkdir()
    spec = ContainerSpec(sif=str(sif.path), partition_offset=sif.partition_offset,
                         scratch_parent=str(scratch_parent), env_file=str(base / "container.env"),
                         mounts=(Mount(str(base / "code"), "/code"),
                                 Mount(str(base / "model"), "/model")),
                         workdir="/code", env=(("PATH", "/bin"), *env.items()), command=command)
    lines = container_script(spec, "bwrap")
    write_env_file(spec, "bwrap")
    text = ("#!/bin/bash\nset -uo pipefail\numask 077\ngw_teardown() {\n:\n" + lines.teardown
            + "\n}\ntrap 'rc=$?; gw_teardown; exit $rc' EXIT\nset -e\n" + lines.setup
            + "\nset +e\n" + lines.run + "\n")
    (base / "job.sh").write_text(text)
    proc = subprocess.Popen(["bash", str(base / "job.sh")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    return proc, base / "model", text


def finish(proc: subprocess.Popen) -> None:
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err


def test_bwrap_secret_reaches_the_container_exactly_and_no_command_line(tmp_path, busybox_sif):
    marker = secrets.token_hex(16)
    secret = f"s3cr{marker} it's \"q\" $(echo x) `id` ${{HOME}}\nline two ;&|* \\ end"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    proc, model, text = start_job(
        tmp_path / "job", busybox_sif, scratch,
        ("sh", "-c", 'for f in /proc/$$/fd/*; do readlink "$f"; done > /model/fds; '
                     'printf %s "$SECRET" > /model/seen; sleep 3'), {"SECRET": secret})
    assert marker not in text and marker not in (tmp_path / "job" / "job.sh").read_text()
    deadline = time.time() + 30
    while not (model / "seen").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    scans = 0
    while proc.poll() is None:  # scan again and again while the container sleeps
        assert cmdlines_holding(marker) == []
        scans += 1
        time.sleep(0.1)
    finish(proc)
    assert scans >= 5, "the container ended before its command lines could be read"
    assert (model / "seen").read_bytes() == secret.encode()
    fds = (model / "fds").read_text()
    assert "/model/fds" in fds and "container.env" not in fds  # bwrap closed descriptor 3
    env_file = tmp_path / "job" / "container.env"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert shared_files_holding(marker, [tmp_path]) == []
    assert list(scratch.iterdir()) == []


def test_planted_scratch_directories_block_nothing(tmp_path, busybox_sif):
    """Another user creates guessable names under the node's scratch parent first (and a
    symlink): two jobs at once still get two fresh private directories, and their teardown
    removes exactly those."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    scratch.chmod(0o1777)  # as /tmp
    planted = [scratch / "gw-job.XXXXXXXXXX", scratch / "gw-job-1", scratch / "gw-job.0000000000"]
    for path in planted:
        path.mkdir()
        path.chmod(0o777)
        if os.geteuid() == 0:
            os.chown(path, NOBODY, NOBODY)
    (scratch / "gw-job.link000000").symlink_to(tmp_path)
    before = sorted(p.name for p in scratch.iterdir())
    jobs = [start_job(tmp_path / f"job{i}", busybox_sif, scratch,
                      ("sh", "-c", "touch /model/started; sleep 2"), {}) for i in (1, 2)]
    deadline = time.time() + 30
    while (not all((model / "started").exists() for _p, model, _t in jobs)
           and time.time() < deadline):
        assert all(proc.poll() is None for proc, _m, _t in jobs), "a job ended early"
        time.sleep(0.05)
    fresh = [p for p in scratch.iterdir() if p.name not in before]
    mounts = Path("/proc/mounts").read_text()
    assert len(fresh) == 2, fresh
    for path in fresh:
        info = path.lstat()
        assert stat.S_ISDIR(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o700
        assert info.st_uid == os.geteuid()
        assert f"{path}/rootfs " in mounts
    for proc, _model, _text in jobs:
        finish(proc)
    assert sorted(p.name for p in scratch.iterdir()) == before
    assert str(scratch) not in Path("/proc/mounts").read_text()
    for path in planted:
        assert path.is_dir() and list(path.iterdir()) == []
