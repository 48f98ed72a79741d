"""`gw --host`: gw on a workstation, the work on a login node, through a real sshd on
localhost with key authentication, started here. The "workstation" side has a home of
its own that must stay empty; the "login node" side is the cluster's."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.conftest import gw_executable, run_gw
from tests.integration.conftest import gw_ok

pytestmark = pytest.mark.container


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def keygen(path: Path) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
                   check=True)
    return path


@pytest.fixture(scope="module")
def flow_home(jupyter_home):
    """The login node's home, with the session's JupyterLab site image."""
    return jupyter_home


@pytest.fixture(scope="module")
def sshd(flow_home, tmp_path_factory):
    """sshd on 127.0.0.1 for root, key only; its sessions use the cluster's gw home."""
    if shutil.which("sshd", path="/usr/sbin:/usr/bin") is None:
        pytest.fail("openssh-server is not installed (scripts/install-deps.sh installs it)")
    base = tmp_path_factory.mktemp("sshd")
    host_key = keygen(base / "host_key")
    client_key = keygen(base / "client_key")
    (base / "authorized_keys").write_text((base / "client_key.pub").read_text())
    port = free_port()
    # the login node converts imports in-process, as the other tests do (GW_IMAGE_BUILD)
    env_line = " ".join(f"{k}={v}" for k, v in {**flow_home, "GW_IMAGE_BUILD": "here"}.items())
    (base / "sshd_config").write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
PidFile {base / 'sshd.pid'}
AuthorizedKeysFile {base / 'authorized_keys'}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
SetEnv {env_line}
Subsystem sftp internal-sftp
""")
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    log = (base / "sshd.log").open("w")
    daemon = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(base / "sshd_config")],
                              stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline, (base / "sshd.log").read_text()
            time.sleep(0.1)
    known = base / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {(base / 'host_key.pub').read_text()}")
    laptop = base / "laptop"
    laptop_env = {"GW_HOME": str(laptop / "home"), "GW_SITE_CONFIG": str(laptop / "none"),
                  "GW_USER_CONFIG": str(laptop / "none-user"), "HOME": str(laptop),
                  "SLURM_CONF": "/nonexistent/slurm.conf",  # no Slurm on a workstation
                  "GW_SUBMIT_HOST": f"root@127.0.0.1:{port}", "GW_SSH_IDENTITY": str(client_key),
                  "GW_SSH_KNOWN_HOSTS": str(known), "GW_REMOTE_GW": gw_executable()}
    laptop.mkdir()
    yield {"port": port, "base": base, "laptop": laptop_env, "cluster": flow_home,
           "known": known}
    daemon.terminate()
    daemon.wait(timeout=10)
    log.close()


@pytest.fixture(scope="module")
def workstation(sshd, tmp_path_factory):
    """A busybox image and an algorithm, sent from the workstation."""
    from tests.support.images import busybox_rootfs, make_archive

    base = tmp_path_factory.mktemp("laptop-files")
    archive = make_archive(base / "bb.tar", [busybox_rootfs(base / "rootfs")],
                           env={"PATH": "/bin"}, workdir="/", cmd=["sh"])
    out = run_gw("image", "import", str(archive), "--name", "bb:v1", env=sshd["laptop"])
    assert "bb:v1" in out.stdout and "upload bb.tar" in out.stderr, out
    return {**sshd, "files": base}


def test_pushes_go_up_over_sftp_and_run_there(workstation):
    env, files = workstation["laptop"], workstation["files"]
    (files / "algo" / "sub").mkdir(parents=True)
    (files / "algo" / "train.sh").write_text("echo step1; sleep 2; echo step2; "
                                             "cp /dataset/d.txt /model/\n")
    (files / "algo" / "sub" / "lib.sh").write_text("true\n")
    pushed = json.loads(run_gw("algo", "push", str(files / "algo"), "--name", "remote-algo",
                               "--json", env=env).stdout)
    assert pushed["files"] == 2 and pushed["created"]
    with zipfile.ZipFile(files / "data.zip", "w") as zf:
        zf.writestr("data/d.txt", "from the laptop\n")
    data = json.loads(run_gw("data", "push", str(files / "data.zip"), "--name", "rdata",
                             "--json", env=env).stdout)
    assert data["files"] == 1
    # Stored on the login node, with the zip's top folder kept; nothing here.
    cluster = workstation["cluster"]
    assert json.loads(gw_ok(cluster, "data", "show", "rdata", "--json"))["files"] == 1
    assert not Path(env["GW_HOME"]).exists()
    # No temporary upload is left there either.
    assert not list(Path("/tmp").glob("gw-transfer.*"))


def test_submit_list_logs_follow_cancel_and_download(workstation, tmp_path):
    env = workstation["laptop"]
    run_gw("data", "push", str(_data_dir(workstation)), "--name", "flat", "-q", env=env)
    job = json.loads(run_gw("job", "submit", "--algo", "remote-algo", "--image", "bb:v1",
                            "--data", "flat", "--mem", "256M", "--json", "--", "sh",
                            "train.sh", env=env).stdout)
    follow = run_gw("job", "logs", str(job["id"]), "-f", env=env)  # returns when it ends
    assert "step1" in follow.stdout and "step2" in follow.stdout
    listed = json.loads(run_gw("job", "list", "--json", env=env).stdout)
    assert [(j["id"], j["state"]) for j in listed][:1] == [(job["id"], "COMPLETED")]
    target = tmp_path / "model.tar.gz"
    run_gw("model", "download", "remote-algo@v1", "-o", str(target), env=env)
    with tarfile.open(target) as tar:
        member = tar.extractfile("remote-algo-v1/d.txt")
        assert member is not None and member.read() == b"flat data\n"
    long_job = json.loads(run_gw("job", "submit", "--algo", "remote-algo", "--image",
                                 "bb:v1", "--mem", "256M", "--json", "--", "sleep", "300",
                                 env=env).stdout)
    cancelled = json.loads(run_gw("job", "cancel", str(long_job["id"]), "--json",
                                  env=env).stdout)
    assert cancelled["id"] == long_job["id"]
    refused = run_gw("model", "download", "remote-algo@v1", "-o",
                     str(tmp_path / "missing" / "m.tar.gz"), env=env, check=False)
    assert refused.returncode == 2 and "does not exist" in refused.stderr


def _data_dir(workstation) -> Path:
    flat = workstation["files"] / "flat"
    flat.mkdir(exist_ok=True)
    (flat / "d.txt").write_text("flat data\n")
    return flat


def test_notebook_start_opens_the_tunnel(workstation):
    env = {**os.environ, **workstation["laptop"]}
    proc = subprocess.Popen([gw_executable(), "notebook", "start", "--image", "jupyter:v1",
                             "--algo", "remote-algo", "--mem", "1G", "--json"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        text = ""
        assert proc.stdout is not None
        while not text.rstrip().endswith("}"):
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else ""
            text += line
        info = json.loads(text)
        assert info["local_url"].startswith("http://localhost:")
        status = info["local_url"].split("/lab?token=")[0] + "/api/status"
        request = urllib.request.Request(status,
                                         headers={"Authorization": f"token {info['token']}"})
        with urllib.request.urlopen(request, timeout=20) as answer:
            assert answer.status == 200
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert proc.returncode == 0
    stopped = json.loads(run_gw("notebook", "stop", str(info["id"]), "--wait", "--json",
                                env=workstation["laptop"]).stdout)
    assert stopped["id"] == info["id"]


@pytest.mark.parametrize("fault", ["unreachable", "refused key", "unknown host key"])
def test_a_host_that_cannot_be_used_is_one_line_and_exit_1(sshd, fault, tmp_path):
    env = dict(sshd["laptop"])
    if fault == "unreachable":
        env["GW_SUBMIT_HOST"] = f"root@127.0.0.1:{free_port()}"
        expected = "cannot reach"
    elif fault == "refused key":
        env["GW_SSH_IDENTITY"] = str(keygen(tmp_path / "stranger"))
        expected = "key was refused"
    else:
        (tmp_path / "known_hosts").write_text("")
        env["GW_SSH_KNOWN_HOSTS"] = str(tmp_path / "known_hosts")
        expected = "host key is unknown"
    proc = run_gw("job", "list", env=env, check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("gw: error: cannot reach") and expected in lines[0], lines


def test_help_and_completion_stay_local(sshd):
    env = {**sshd["laptop"], "GW_SUBMIT_HOST": "root@127.0.0.1:1"}  # nothing listens
    assert "Commands:" in run_gw("--help", env=env).stdout
    assert "_GW_COMPLETE" in run_gw("completion", "bash", env=env).stdout
    assert "Usage: gw --host" not in run_gw("job", "submit", "--help", env=env).stdout
