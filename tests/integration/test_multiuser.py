"""Several people on one login node, as real Unix users on the real local Slurm.

The tests create three unprivileged users (as root, with useradd): gwalice and gwbob in the
group gwteam, gwcarol outside it. gw is installed for all of them the way a site installs
it (scripts/install-site.sh: a venv on the system python3), and every command runs as the
user with runuser, with a clean environment; Slurm runs their jobs as themselves. An
administrator (root here) publishes the site images.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.container

BASE = Path("/var/tmp/gw-multiuser")
USERS = ("gwalice", "gwbob", "gwcarol")
GROUP = "gwteam"
MEMBERS = ("gwalice", "gwbob")


class Site:
    """The installed gw, the site config, and a way to run gw as anyone."""

    def __init__(self, cluster_env: dict[str, str]) -> None:
        self.gw = BASE / "prefix" / "bin" / "gw"
        self.config = BASE / "site.toml"
        self.shares = BASE / "shares"
        self.images = BASE / "site-images"
        self.inputs = BASE / "inputs"
        self.admin_home = BASE / "admin-home"
        self.slurm_conf = cluster_env["SLURM_CONF"]

    def env(self, user: str, **extra: str) -> list[str]:
        home = pwd.getpwnam(user).pw_dir
        values = {"HOME": home, "USER": user, "LOGNAME": user, "PATH": "/usr/bin:/bin",
                  "SLURM_CONF": self.slurm_conf, "GW_SITE_CONFIG": str(self.config), **extra}
        return ["env", "-i", *(f"{k}={v}" for k, v in values.items())]

    def run(self, user: str, *args: str, check: bool = True, **extra: str
            ) -> subprocess.CompletedProcess[str]:
        """Run ``args`` as ``user`` (``gw`` means the installed gw)."""
        argv = [str(self.gw) if args[0] == "gw" else args[0], *args[1:]]
        proc = subprocess.run(["runuser", "-u", user, "--", *self.env(user, **extra), *argv],
                              capture_output=True, text=True, timeout=600, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"{user}: {' '.join(args)} exited {proc.returncode}:\n"
                                 f"{proc.stdout}\n{proc.stderr}")
        return proc

    def gw_json(self, user: str, *args: str, **extra: str):
        """gw ARGS --json as ``user`` (--json goes before a command after --)."""
        cut = args.index("--") if "--" in args else len(args)
        argv = (*args[:cut], "--json", *args[cut:])
        return json.loads(self.run(user, "gw", *argv, **extra).stdout)

    def admin(self, *args: str) -> str:
        """gw as the administrator (root, with a home of its own)."""
        env = {**os.environ, "GW_HOME": str(self.admin_home), "GW_SITE_CONFIG": str(self.config),
               "SLURM_CONF": self.slurm_conf}
        env.pop("GW_DATABASE", None)
        return subprocess.run([str(self.gw), *args], capture_output=True, text=True, env=env,
                              check=True, timeout=900).stdout

    def gw_home(self, user: str) -> Path:
        return Path(pwd.getpwnam(user).pw_dir) / ".local" / "share" / "hpc-gateway"


def _make_users() -> None:
    try:
        grp.getgrnam(GROUP)
    except KeyError:
        subprocess.run(["groupadd", GROUP], check=True)
    for user in USERS:
        try:
            pwd.getpwnam(user)
        except KeyError:
            subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", user],
                           check=True)
        home = Path(pwd.getpwnam(user).pw_dir)
        for leftover in (home / ".local" / "share" / "hpc-gateway",
                         home / ".config" / "hpc-gateway"):
            shutil.rmtree(leftover, ignore_errors=True)
    for user in MEMBERS:
        subprocess.run(["usermod", "--append", "--groups", GROUP, user], check=True)


@pytest.fixture(scope="module")
def site(cluster_env):
    """Users, a site install of gw, share_root and site_images, and a busybox site image."""
    if os.geteuid() != 0:
        pytest.skip("creating Unix users needs root (CI runs as root)")
    from tests.support.images import busybox_rootfs, make_archive

    for user in USERS:  # nothing of an earlier run may still be queued
        subprocess.run(["scancel", "--user", user], capture_output=True, check=False,
                       env={**os.environ, **cluster_env})
    _make_users()
    shutil.rmtree(BASE, ignore_errors=True)
    BASE.mkdir(mode=0o755, parents=True)
    os.chmod(BASE, 0o755)
    subprocess.run(["bash", str(REPO / "scripts" / "install-site.sh"), str(BASE / "prefix")],
                   check=True, capture_output=True, text=True)
    s = Site(cluster_env)
    s.shares.mkdir(mode=0o777)
    os.chmod(s.shares, 0o1777)  # as a site makes it: like /tmp
    s.images.mkdir(mode=0o755)
    s.config.write_text(f'share_root = "{s.shares}"\nsite_images = "{s.images}"\n')
    os.chmod(s.config, 0o644)
    s.inputs.mkdir(mode=0o755)
    make_archive(s.inputs / "bb.tar", [busybox_rootfs(BASE / "rootfs")], env={"PATH": "/bin"},
                 workdir="/", cmd=["sh"])
    (s.inputs / "algo").mkdir()
    (s.inputs / "algo" / "train.sh").write_text(
        "cat /dataset/d.txt > /model/out.txt; echo trained >> /model/out.txt\n")
    (s.inputs / "data").mkdir()
    (s.inputs / "data" / "d.txt").write_text("alice's data\n")
    subprocess.run(["chmod", "-R", "a+rX", str(s.inputs)], check=True)
    probe = s.run("gwbob", "bwrap", "--ro-bind", "/", "/", "true", check=False)
    if probe.returncode != 0:
        pytest.fail(f"bubblewrap does not run for an unprivileged user here: {probe.stderr}")
    s.admin("image", "import", str(s.inputs / "bb.tar"), "--name", "busybox:site", "-q")
    s.admin("image", "publish", "busybox:site", "-q")
    yield s
    for user in USERS:
        subprocess.run(["scancel", "--user", user], capture_output=True, check=False,
                       env={**os.environ, **cluster_env})


@pytest.fixture(scope="module")
def alice(site):
    """Alice's own image, algorithm, dataset, a finished job with its model, and a job
    that keeps running."""
    a = "gwalice"
    site.run(a, "gw", "image", "import", str(site.inputs / "bb.tar"), "--name", "private:v1",
             "-q")
    site.run(a, "gw", "algo", "push", str(site.inputs / "algo"), "--name", "secretalgo", "-q")
    site.run(a, "gw", "data", "push", str(site.inputs / "data"), "--name", "imagenet", "-q")
    done = site.gw_json(a, "job", "submit", "--algo", "secretalgo", "--image", "private:v1",
                        "--data", "imagenet", "--mem", "256M", "--wait", "--", "sh",
                        "train.sh")
    assert done["state"] == "COMPLETED", done
    running = site.gw_json(a, "job", "submit", "--algo", "secretalgo", "--image",
                           "busybox:site", "--mem", "256M", "--", "sleep", "600")
    _wait_state(site, a, running["id"], "RUNNING")
    return {"done": done, "running": running}


def _wait_state(site: Site, user: str, job_id: int, state: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = site.gw_json(user, "job", "show", str(job_id))
        if job["state"] == state or time.monotonic() > deadline:
            assert job["state"] == state, job
            return job
        time.sleep(0.5)


def _tree(path: Path) -> dict[str, tuple[int, int]]:
    """Every path under ``path`` with its size and mtime (as root sees it)."""
    return {str(p): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in path.rglob("*")
            if not p.name.endswith(("-journal", "-wal", "-shm"))}


def _squeue_state(site: Site, slurm_id: int) -> str:
    return subprocess.run(["squeue", "-h", "-j", str(slurm_id), "-o", "%T"], text=True,
                          capture_output=True, env={**os.environ, "SLURM_CONF": site.slurm_conf},
                          check=False).stdout.strip()


def test_the_second_user_sees_and_changes_nothing_of_the_first(site, alice):
    b, alice_home = "gwbob", site.gw_home("gwalice")
    running = alice["running"]
    assert os.stat(alice_home).st_mode & 0o777 == 0o700
    before = _tree(alice_home)

    # Bob's own home shows none of it: only the site image is common.
    images = site.gw_json(b, "image", "list")
    assert [(i["name"], i["site"]) for i in images] == [("busybox:site", True)]
    for kind in ("algo", "data", "model"):
        assert site.gw_json(b, kind, "list") == []
    assert site.gw_json(b, "job", "list") == []
    for args in (("job", "show", "1"), ("job", "logs", "1"), ("job", "cancel", str(running["id"])),
                 ("model", "download", "secretalgo@v1", "-o", "/tmp/gwbob-model.tar.gz"),
                 ("algo", "show", "secretalgo"), ("image", "show", "private:v1")):
        proc = site.run(b, "gw", *args, check=False)
        assert proc.returncode != 0 and proc.stderr.startswith("gw: error:"), (args, proc)
    assert not Path("/tmp/gwbob-model.tar.gz").exists()

    # Pointing gw at Alice's home or database gets a one-line error, never her data.
    alice_db = str(alice_home / "gateway.db")
    bob_db = str(site.gw_home(b) / "gateway.db")
    for extra in ({"GW_HOME": str(alice_home)}, {"GW_DATABASE": alice_db},
                  {"GW_HOME": str(alice_home), "GW_DATABASE": bob_db}):
        for args in (("algo", "list"), ("job", "list"), ("job", "cancel", str(running["id"])),
                     ("model", "download", "secretalgo@v1", "-o", "/tmp/gwbob-model.tar.gz"),
                     ("job", "logs", "1")):
            proc = site.run(b, "gw", *args, check=False, **extra)
            assert proc.returncode != 0, (extra, args, proc.stdout)
            lines = proc.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("gw: error:"), (extra, args, lines)
            assert "secret" not in proc.stdout + proc.stderr
    assert not Path("/tmp/gwbob-model.tar.gz").exists()

    # The files themselves, and Slurm, refuse him too.
    model_file = alice_home / "models" / "secretalgo" / "v1" / "out.txt"
    assert model_file.is_file()
    alice_log = alice_home / "jobs" / "1" / f"slurm-{alice['done']['slurm_job_id']}.out"
    for argv in (("cat", str(model_file)), ("ls", str(alice_home)), ("cat", str(alice_log)),
                 ("scancel", str(running["slurm_job_id"]))):
        assert site.run(b, *argv, check=False).returncode != 0, argv
    time.sleep(1)
    assert _squeue_state(site, running["slurm_job_id"]) == "RUNNING"

    # The site image is his to run, not to change.
    proc = site.run(b, "gw", "image", "rm", "busybox:site", check=False)
    assert proc.returncode != 0 and "site image" in proc.stderr
    proc = site.run(b, "gw", "image", "unpublish", "busybox:site", check=False)
    assert proc.returncode != 0 and "administrators" in proc.stderr
    sif = next(site.images.glob("*.sif"))
    for argv in (("sh", "-c", f"echo x >> {sif}"), ("rm", "-f", str(sif)),
                 ("touch", str(site.images / "index.json"))):
        assert site.run(b, *argv, check=False).returncode != 0, argv
    def settled(tree):  # what only a running job writes to is left out
        return {p: v for p, v in tree.items() if "/spool" not in p and "/jobs/" not in p}

    assert settled(_tree(alice_home)) == settled(before)
    assert site.gw_json("gwalice", "job", "show", str(running["id"]))["state"] == "RUNNING"


def test_a_group_uses_what_is_shared_with_it_and_changes_none_of_it(site, alice):
    a, b, c = "gwalice", "gwbob", "gwcarol"
    submit = ("job", "submit", "--image", "busybox:site", "--mem", "256M", "--wait")
    proc = site.run(b, "gw", *submit, "--algo", "gwalice:secretalgo", "--data",
                    "gwalice:imagenet@v1", "--", "sh", "train.sh", check=False)
    assert proc.returncode == 2 and "shares no algorithm named 'secretalgo'" in proc.stderr

    for kind, name in (("algo", "secretalgo"), ("data", "imagenet"), ("model", "secretalgo")):
        site.run(a, "gw", kind, "share", name, "--group", GROUP)
    assert {r["name"]: r["shared_with"] for r in site.gw_json(a, "data", "list")} == {
        "imagenet": GROUP}
    assert [r["ref"] for r in site.gw_json(b, "data", "list", "--shared")] == [
        "gwalice:imagenet"]
    assert site.gw_json(c, "data", "list", "--shared") == []

    # Bob trains on Alice's algorithm and dataset; his model's lineage names them.
    job = site.gw_json(b, *submit, "--algo", "gwalice:secretalgo", "--data",
                       "gwalice:imagenet@v1", "--", "sh", "train.sh")
    assert job["state"] == "COMPLETED", job
    out = site.run(b, "gw", "model", "cat", "secretalgo", "out.txt").stdout
    assert out == "alice's data\ntrained\n"
    lineage = site.gw_json(b, "model", "show", "secretalgo@v1")
    assert lineage["algo"] == "gwalice:secretalgo@v1"
    assert lineage["dataset"] == "gwalice:imagenet@v1"
    # ... and reads her model.
    assert site.run(b, "gw", "model", "cat", "gwalice:secretalgo@v1", "out.txt").stdout == (
        "alice's data\ntrained\n")
    proc = site.run(b, "gw", "model", "download", "gwalice:secretalgo@v1", "-o",
                    str(BASE / "bob.tar.gz"), check=False)  # a place he may not write
    assert proc.returncode == 2 and "cannot write in" in proc.stderr
    assert not list(BASE.glob("*bob*"))
    tarball = site.gw_home(b).parent / "bob-download.tar.gz"
    site.run(b, "gw", "model", "download", "gwalice:secretalgo@v1", "-o", str(tarball))
    assert tarball.stat().st_size > 0

    # He cannot change any of it, with gw or without.
    publication = site.shares / a / "data" / "imagenet"
    for args in (("data", "rm", "gwalice:imagenet@v1"), ("data", "push", str(site.inputs / "data"),
                 "--name", "gwalice:imagenet"), ("data", "unshare", "imagenet")):
        assert site.run(b, "gw", *args, check=False).returncode != 0, args
    for argv in (("touch", str(publication / "v1" / "new")),
                 ("sh", "-c", f"echo x >> {publication / 'v1' / 'd.txt'}"),
                 ("rm", "-rf", str(publication / "v1")),
                 ("mv", str(publication), str(site.shares / "stolen")),
                 ("touch", str(publication / "share.json"))):
        assert site.run(b, *argv, check=False).returncode != 0, argv
    assert (publication / "v1" / "d.txt").read_text() == "alice's data\n"
    wrote = site.run(b, "gw", *submit, "--algo", "gwalice:secretalgo", "--data",
                     "gwalice:imagenet", "--", "sh", "-c", "echo x > /dataset/d.txt",
                     check=False)
    assert wrote.returncode == 1
    assert (publication / "v1" / "d.txt").read_text() == "alice's data\n"

    # Carol is not in the group: named, refused; the files refuse her too.
    proc = site.run(c, "gw", *submit, "--algo", "gwalice:secretalgo", "--", "true",
                    check=False)
    assert proc.returncode == 2 and "with a group you are not in" in proc.stderr
    assert site.run(c, "cat", str(publication / "v1" / "d.txt"), check=False).returncode != 0
    assert site.gw_json(c, "job", "list") == []

    # New versions are shared as they are made; removed ones are withdrawn.
    (site.inputs / "data2").mkdir(exist_ok=True)
    (site.inputs / "data2" / "d.txt").write_text("alice's data, v2\n")
    subprocess.run(["chmod", "-R", "a+rX", str(site.inputs / "data2")], check=True)
    site.run(a, "gw", "data", "push", str(site.inputs / "data2"), "--name", "imagenet", "-q")
    assert [v["ref"] for v in site.gw_json(b, "data", "versions", "gwalice:imagenet")] == [
        "gwalice:imagenet@v1", "gwalice:imagenet@v2"]
    site.run(a, "gw", "data", "rm", "imagenet@v1")
    assert [v["ref"] for v in site.gw_json(b, "data", "versions", "gwalice:imagenet")] == [
        "gwalice:imagenet@v2"]
    assert not (publication / "v1").exists()

    # Unsharing takes it away at once.
    site.run(a, "gw", "data", "unshare", "imagenet")
    assert not publication.exists()
    proc = site.run(b, "gw", *submit, "--algo", "gwalice:secretalgo", "--data",
                    "gwalice:imagenet", "--", "true", check=False)
    assert proc.returncode == 2 and "shares no dataset named 'imagenet'" in proc.stderr
    assert site.gw_json(b, "data", "list", "--shared") == []


def test_nobody_can_pass_off_files_as_another_users_share(site, alice):
    """Carol makes share_root/gwbob before Bob does: Bob's share is refused with the reason,
    and what Carol put there is never taken for Bob's."""
    c, b = "gwcarol", "gwbob"
    fake = site.shares / b / "data" / "fake"
    site.run(c, "mkdir", "-p", str(fake / "v1"))
    site.run(c, "sh", "-c", f"echo evil > {fake / 'v1' / 'd.txt'}; echo "
             f"'{{\"versions\": [{{\"number\": 1}}], \"group\": \"{GROUP}\"}}' > "
             f"{fake / 'share.json'}; chmod -R go-w {site.shares / b}")
    proc = site.run("gwalice", "gw", "data", "show", "gwbob:fake", check=False)
    assert proc.returncode != 0 and "is not gwbob's alone" in proc.stderr
    assert site.gw_json("gwalice", "data", "list", "--shared") == []
    site.run(b, "gw", "data", "push", str(site.inputs / "data"), "--name", "mine", "-q")
    proc = site.run(b, "gw", "data", "share", "mine", "--group", GROUP, check=False)
    assert proc.returncode == 2 and "belongs to gwcarol" in proc.stderr
    proc = site.run(c, "gw", "data", "share", "x", "--group", GROUP, check=False)
    assert proc.returncode != 0  # no such dataset, and not in the group either
    site.run(c, "gw", "data", "push", str(site.inputs / "data"), "--name", "x", "-q")
    proc = site.run(c, "gw", "data", "share", "x", "--group", GROUP, check=False)
    assert proc.returncode == 2 and "you are not in the group 'gwteam'" in proc.stderr
    assert not (site.shares / c / "data" / "x").exists()
    shutil.rmtree(site.shares / b)


def test_another_users_notebook_answers_only_its_owners_token(site, alice):
    archive = subprocess.run(["bash", str(REPO / "scripts" / "make-jupyter-image.sh")],
                             capture_output=True, text=True, check=True).stdout.strip()
    site.admin("image", "import", archive, "--name", "jupyter:site", "-q")
    site.admin("image", "publish", "jupyter:site", "-q")
    a, b = "gwalice", "gwbob"
    info = site.gw_json(a, "notebook", "start", "--image", "jupyter:site", "--algo",
                        "secretalgo", "--mem", "1G", "--time", "0:10:00", "--wait",
                        "--wait-timeout", "180")
    try:
        assert info["state"] == "RUNNING"
        base = info["url"].split("lab?token=")[0]
        # The server listens on the node's address, not on every interface.
        assert not base.startswith(("http://0.0.0.0", "http://[::]"))
        probe = ("import sys, urllib.request, urllib.error\n"
                 "req = urllib.request.Request(sys.argv[1], headers={'Authorization': "
                 "'token ' + sys.argv[2]} if sys.argv[2] else {})\n"
                 "try:\n    print(urllib.request.urlopen(req, timeout=10).status)\n"
                 "except urllib.error.HTTPError as e:\n    print(e.code)\n")
        for token in ("", "0" * 48, info["token"][:-1]):
            said = site.run(b, "/usr/bin/python3", "-c", probe, base + "api/contents",
                            token).stdout.strip()
            assert said == "403", (token, said)
        assert site.run(a, "/usr/bin/python3", "-c", probe, base + "api/contents",
                        info["token"]).stdout.strip() == "200"
        connection = Path(info["draft"]).parent / "notebook.json"
        assert site.run(b, "cat", str(connection), check=False).returncode != 0
        for args in (("notebook", "show", str(info["id"])), ("notebook", "save", str(info["id"])),
                     ("notebook", "stop", str(info["id"]))):
            assert site.run(b, "gw", *args, check=False).returncode != 0, args
        assert site.gw_json(b, "notebook", "list") == []
        assert site.gw_json(a, "notebook", "show", str(info["id"]))["state"] == "RUNNING"
    finally:
        site.run(a, "gw", "notebook", "stop", str(info["id"]), "--wait", check=False)


def test_site_images_are_published_by_administrators_only(site):
    proc = site.run("gwalice", "gw", "image", "publish", "private:v1", check=False)
    assert proc.returncode == 2 and "only the site's administrators" in proc.stderr
    # A site store others could write is refused, not used.
    site.run("gwbob", "gw", "algo", "push", str(site.inputs / "algo"), "--name", "bobs", "-q")
    os.chmod(site.images, 0o777)
    try:
        proc = site.run("gwbob", "gw", "job", "submit", "--image", "busybox:site", "--algo",
                        "bobs", "--", "true", check=False)
        assert proc.returncode == 2 and "site image store is not safe" in proc.stderr
        listed = site.run("gwbob", "gw", "image", "list")
        assert "not safe" in listed.stderr and "busybox:site" not in listed.stdout
    finally:
        os.chmod(site.images, 0o755)
    assert "busybox:site" in site.run("gwbob", "gw", "image", "list").stdout


def _dashboard(site: Site, user: str) -> tuple[subprocess.Popen[str], dict]:
    server = subprocess.Popen(["runuser", "-u", user, "--", *site.env(user), str(site.gw),
                               "web", "--json"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    line = server.stdout.readline() if server.stdout else ""
    assert line, f"{user}'s gw web printed no address"
    return server, json.loads(line)


def _ask(address: dict, path: str, token: str | None = None, method: str = "GET",
         form: dict[str, str] | None = None, origin: str | None = None) -> int:
    return _answer(address, path, token, method, form, origin)[0]


def _answer(address: dict, path: str, token: str | None = None, method: str = "GET",
            form: dict[str, str] | None = None, origin: str | None = None
            ) -> tuple[int, bytes]:
    """The status and body the dashboard at `address` answers."""
    import urllib.error
    import urllib.parse
    import urllib.request

    headers = {"Cookie": f"gw_token={token}"} if token else {}
    if origin:
        headers["Origin"] = origin
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{address['port']}{path}", data=data,
                                     method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


def test_a_dashboard_shows_its_owner_alone(site, alice):
    """Two people's `gw web` on one login node: each answers its own token only, shows
    its owner's home only, and refuses forged cross-site requests."""
    done = alice["done"]["id"]
    bob_server, bob = _dashboard(site, "gwbob")
    alice_server, mine = _dashboard(site, "gwalice")
    try:
        assert _ask(mine, f"/jobs/{done}", mine["token"]) == 200
        assert _ask(mine, "/models/secretalgo", mine["token"]) == 200
        for token in (None, mine["token"], bob["token"][:-1]):
            assert _ask(bob, "/jobs", token) == 403, token
        # Job numbers are each home's own: alice's job number names, in bob's dashboard,
        # bob's job of that number or nothing; never alice's job.
        bobs_jobs = {job["id"] for job in site.gw_json("gwbob", "job", "list")}
        for path in (f"/jobs/{done}", f"/jobs/{done}/log"):
            status, body = _answer(bob, path, bob["token"])
            assert status == (200 if done in bobs_jobs else 404), path
            if status == 200:   # bob's own job: its Slurm job, never alice's
                his = site.gw_json("gwbob", "job", "show", str(done))["slurm_job_id"]
                assert his != alice["done"]["slurm_job_id"]
                assert path.endswith("/log") or f"<dd>{his}</dd>".encode() in body, path
                assert f"<dd>{alice['done']['slurm_job_id']}</dd>".encode() not in body
        if done not in bobs_jobs:
            assert _ask(bob, f"/jobs/{done}/outputs", bob["token"]) == 404
        # bob's models are his own (one named after alice's shared algorithm included)
        bobs_models = {m["name"] for m in site.gw_json("gwbob", "model", "list")}
        for path in ("/models/secretalgo", "/models/secretalgo/v1/download"):
            assert _ask(bob, path, bob["token"]) == (
                200 if "secretalgo" in bobs_models else 404), path
        for path in ("/algorithms/secretalgo", "/datasets/imagenet"):
            assert _ask(bob, path, bob["token"]) == 404, path
        running = alice["running"]["id"]
        assert _ask(mine, f"/jobs/{running}/cancel", mine["token"], "POST", {}) == 403
        assert _ask(mine, f"/jobs/{running}/cancel", mine["token"], "POST",
                    {"csrf": "0" * 64}, origin="http://127.0.0.1:1") == 403
        assert site.gw_json("gwalice", "job", "show", str(running))["state"] == "RUNNING"
    finally:
        for server in (bob_server, alice_server):
            server.terminate()
            server.wait(timeout=30)
