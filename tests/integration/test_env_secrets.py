"""`--env` values are secrets: on no process's command line, in no file others can read.

Runs a real job on the local cluster with a random token and looks for it while the job
runs: in every /proc/*/cmdline (login node and compute node are one machine here), and in
every file under the home, the cluster's state and /tmp that is readable by group or
others.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import time
from pathlib import Path

import pytest

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
