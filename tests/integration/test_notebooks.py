"""Notebooks on the real local Slurm, in real images made as the seed makes its notebook
image (scripts/make-jupyter-image.sh: the demo's Debian rootfs plus `pip install
jupyterlab` only), and one with papermill besides."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import run_gw
from tests.integration.conftest import gw_ok

pytestmark = pytest.mark.container


@pytest.fixture(scope="module")
def nb_home(flow_home, jupyter_sites, tmp_path_factory):
    """A home with the JupyterLab images (the session's site images: the seed's and its
    papermill variant), a busybox image and an algorithm."""
    from tests.support.images import busybox_rootfs, make_archive

    flow_home = {**flow_home, "GW_SITE_CONFIG": str(jupyter_sites["all"])}
    base = tmp_path_factory.mktemp("nb")
    plain = make_archive(base / "bb.tar", [busybox_rootfs(base / "rootfs")],
                         env={"PATH": "/bin"}, workdir="/", cmd=["sh"])
    gw_ok(flow_home, "image", "import", str(plain), "--name", "plain:v1", "-q")
    (base / "algo").mkdir()
    (base / "algo" / "train.py").write_text("print('v1')\n")
    gw_ok(flow_home, "algo", "push", str(base / "algo"), "--name", "nbalgo", "-q")
    return {**flow_home, "base": str(base)}


def start(env, *args):
    return json.loads(gw_ok(env, "notebook", "start", "--image", "jupyter:v1", "--algo",
                            "nbalgo", "--mem", "1G", "--wait", "--wait-timeout", "180",
                            "--json", *args))


def api(info, path, method="GET", body=None, token=True):
    base = info["url"].split("lab?token=")[0]
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"token {info['token']}"
    request = urllib.request.Request(base + path, method=method, headers=headers,
                                     data=json.dumps(body).encode() if body else None)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read() or b"null")


def write_file(info, name, text):
    status, _ = api(info, f"api/contents/{name}", "PUT",
                    {"type": "file", "format": "text", "content": text})
    assert status in (200, 201)


def versions(env):
    return [v["ref"] for v in json.loads(gw_ok(env, "algo", "versions", "nbalgo", "--json"))]


def test_notebook_answers_only_with_its_token_and_saves_edits(nb_home):
    info = start(nb_home, "--time", "0:20:00")
    assert info["state"] == "RUNNING" and info["token"] and len(info["token"]) >= 32
    assert info["tunnel"].startswith(f"ssh -N -L {info['port']}:")
    assert info["algo"] == "nbalgo@v1" and 0 < info["time_left"] <= 1200
    status, body = api(info, "api/status")
    assert status == 200 and "started" in body
    with pytest.raises(urllib.error.HTTPError) as refused:
        api(info, "api/status", token=False)
    assert refused.value.code == 403
    conn = Path(info["draft"]).parent / "notebook.json"
    assert conn.stat().st_mode & 0o777 == 0o600
    before = versions(nb_home)
    write_file(info, "edited.py", "print('edited in JupyterLab')\n")
    saved = json.loads(gw_ok(nb_home, "notebook", "save", str(info["id"]), "--json"))
    assert saved["saved"] and saved["saved"] not in before
    again = json.loads(gw_ok(nb_home, "notebook", "save", str(info["id"]), "--json"))
    assert again["saved"] is None  # unchanged since the last save
    assert json.loads(gw_ok(nb_home, "notebook", "show", str(info["id"]), "--json"))[
        "state"] == "RUNNING"  # saving does not stop it
    write_file(info, "more.py", "print('more')\n")
    draft = Path(info["draft"])
    (draft / ".ipynb_checkpoints").mkdir(exist_ok=True)
    (draft / ".ipynb_checkpoints" / "more-checkpoint.py").write_text("checkpoint\n")
    gw_ok(nb_home, "notebook", "stop", str(info["id"]), "--wait")
    final = json.loads(gw_ok(nb_home, "notebook", "show", str(info["id"]), "--json"))
    assert final["state"] == "STOPPED" and final["url"] is None
    assert len(final["saved_versions"]) == 2 and final["saved_versions"][0] == saved["saved"]
    last = json.loads(gw_ok(nb_home, "algo", "show", final["saved_versions"][-1], "--json"))
    assert last["parent"] == saved["saved"] and last["origin"] == f"notebook {info['id']}"
    files = sorted(p.name for p in Path(last["path"]).rglob("*"))
    assert files == ["edited.py", "more.py", "train.py"]  # no checkpoint folder


def test_notebook_behind_an_ondemand_style_proxy_prefix(nb_home):
    """--proxy-prefix /node: the server answers under /node/<host>/<port>/ (the path an
    Open OnDemand reverse proxy forwards), with its token, and not at /."""
    import socket

    info = start(nb_home, "--time", "0:10:00", "--proxy-prefix", "/node")
    try:
        prefix = f"/node/{socket.gethostname()}/{info['port']}/"
        assert f":{info['port']}{prefix}lab?token=" in info["url"], info["url"]
        status, body = api(info, "api/status")
        assert status == 200 and "started" in body
        with pytest.raises(urllib.error.HTTPError) as refused:
            api(info, "api/status", token=False)
        assert refused.value.code == 403
        root = info["url"].split(prefix)[0] + "/api/status"
        with pytest.raises(urllib.error.HTTPError) as elsewhere:
            urllib.request.urlopen(urllib.request.Request(
                root, headers={"Authorization": f"token {info['token']}"}), timeout=10)
        assert elsewhere.value.code == 404
    finally:
        gw_ok(nb_home, "notebook", "stop", str(info["id"]), "--wait")
    bad = run_gw("notebook", "start", "--image", "jupyter:v1", "--algo", "nbalgo",
                 "--proxy-prefix", "node; rm -rf /", env=nb_home, check=False)
    assert bad.returncode == 2 and "invalid --proxy-prefix" in bad.stderr


def test_unchanged_notebook_makes_no_version(nb_home):
    before = versions(nb_home)
    info = start(nb_home, "--time", "0:10:00")
    gw_ok(nb_home, "notebook", "stop", str(info["id"]), "--wait")
    final = json.loads(gw_ok(nb_home, "notebook", "show", str(info["id"]), "--json"))
    assert final["state"] == "STOPPED" and final["saved_versions"] == []
    assert "code unchanged" in final["reason"]
    assert versions(nb_home) == before


def test_time_limit_saves_before_the_kill(nb_home, tmp_path):
    """A 3-minute notebook warned a minute ahead (notebook_save_seconds = 60): what was
    written through Jupyter becomes a version, and the notebook ends TIMEOUT."""
    config = tmp_path / "user.toml"
    config.write_text("notebook_save_seconds = 60\n")
    env = {**nb_home, "GW_USER_CONFIG": str(config)}
    info = start(env, "--time", "0:03:00")
    write_file(info, "late.py", "print('typed before the limit')\n")
    deadline = time.time() + 300
    final = info
    while time.time() < deadline:
        final = json.loads(gw_ok(env, "notebook", "show", str(info["id"]), "--json"))
        if final["state"] in ("STOPPED", "TIMEOUT", "FAILED"):
            break
        time.sleep(3)
    assert final["state"] == "TIMEOUT", final
    assert len(final["saved_versions"]) == 1, final
    saved = json.loads(gw_ok(env, "algo", "show", final["saved_versions"][0], "--json"))
    assert (Path(saved["path"]) / "late.py").read_text() == "print('typed before the limit')\n"


def test_image_without_jupyter_is_refused_before_submission(nb_home):
    before = json.loads(gw_ok(nb_home, "job", "list", "--json"))
    proc = run_gw("notebook", "start", "--image", "plain:v1", "--algo", "nbalgo",
                  env=nb_home, check=False)
    assert proc.returncode == 2 and "has no `jupyter`" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert json.loads(gw_ok(nb_home, "job", "list", "--json")) == before


def test_notebook_commands_refuse_other_jobs(nb_home):
    job = json.loads(gw_ok(nb_home, "job", "submit", "--json", "--algo", "nbalgo", "--image",
                           "plain:v1", "--mem", "64M", "--", "true"))
    proc = run_gw("notebook", "show", str(job["id"]), env=nb_home, check=False)
    assert proc.returncode == 2 and "not a notebook" in proc.stderr


def notebook_json(cells: list[tuple[str, list[str]]]) -> str:
    return json.dumps({
        "cells": [{"cell_type": "code", "metadata": {"tags": tags}, "source": source,
                   "outputs": [], "execution_count": None} for source, tags in cells],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                    "language": "python"}},
        "nbformat": 4, "nbformat_minor": 5})


@pytest.fixture(scope="module")
def project(nb_home):
    """The seed's background task: a project whose main.ipynb is run headless, using the
    seed's notebook habits (`!shell`, `%cd`, relative paths)."""
    src = Path(nb_home["base"]) / "project"
    (src / "notebooks" / "data").mkdir(parents=True)
    (src / "notebooks" / "data" / "rows.txt").write_text("3\n")
    (src / "notebooks" / "main.ipynb").write_text(notebook_json([
        ("lr = 0.1\nepochs = 1\n", ["parameters"]),
        ("print(f'training with lr={lr!r} ({type(lr).__name__}), epochs={epochs}')\n"
         "rows = int(open('data/rows.txt').read())\n"
         "open('/model/weights.txt', 'w').write(f'{lr} {rows}')\n", []),
        ("!echo shell says $((6 * 7)) && mkdir -p results\n"
         "%cd results\n"
         "open('metrics.txt', 'w').write('accuracy 0.9')\n"
         "import os; print('now in', os.getcwd())\n", []),
    ]))
    (src / "jobs").mkdir()
    (src / "jobs" / "fails.ipynb").write_text(notebook_json([
        ("print('fine so far')\n", []),
        ("raise ValueError('bad row 7')\n", []), ("print('never reached')\n", []),
    ]))
    gw_ok(nb_home, "algo", "push", str(src), "--name", "project", "-q")
    return nb_home


HEADLESS_IMAGES = ["jupyter:v1", "jupyter-papermill:v1"]


@pytest.mark.parametrize("image", HEADLESS_IMAGES)
def test_headless_notebook_runs_harvests_and_keeps_the_executed_copy(project, tmp_path, image):
    job = json.loads(gw_ok(project, "job", "submit", "--json", "--wait", "--algo", "project",
                           "--image", image, "--mem", "1G", "--notebook",
                           "notebooks/main.ipynb", "--param", "lr=0.01", "--param", "epochs=3"))
    assert job["state"] == "COMPLETED" and job["kind"] == "headless", job
    assert gw_ok(project, "model", "cat", job["model"], "weights.txt") == "0.01 3"
    log = gw_ok(project, "job", "logs", str(job["id"]))
    assert "Executing Cell 2" in log and "Executing Cell 3" in log, log
    assert "training with lr=0.01 (float), epochs=3" in log, log
    assert "shell says 42" in log and "now in /code/notebooks/results" in log, log
    out = tmp_path / "out.tar.gz"
    gw_ok(project, "job", "outputs", str(job["id"]), "-o", str(out))
    import tarfile

    with tarfile.open(out) as tar:
        names = tar.getnames()
        assert "code/notebooks/main.executed.ipynb" in names, names
        assert "code/notebooks/results/metrics.txt" in names, names
        executed = json.load(tar.extractfile("code/notebooks/main.executed.ipynb"))
    injected = [c for c in executed["cells"]
                if "injected-parameters" in c["metadata"].get("tags", [])]
    assert len(injected) == 1 and executed["cells"][1] is injected[0]
    assert "lr = 0.01" in "".join(injected[0]["source"])
    printed = [o.get("text", "") for c in executed["cells"] for o in c.get("outputs", [])]
    assert any("training with lr=0.01" in "".join(t) for t in printed)
    assert any("shell says 42" in "".join(t) for t in printed)


@pytest.mark.parametrize("image", HEADLESS_IMAGES)
def test_headless_notebook_with_a_failing_cell_names_it(project, image):
    before = json.loads(gw_ok(project, "model", "list", "--json"))
    proc = run_gw("job", "submit", "--json", "--wait", "--algo", "project", "--image", image,
                  "--mem", "1G", "--notebook", "jobs/fails.ipynb", env=project, check=False)
    assert proc.returncode == 1
    job = json.loads(proc.stdout)
    assert job["state"] == "FAILED" and job["model"] is None
    assert "cell 2" in job["reason"] and "ValueError: bad row 7" in job["reason"], job
    log = gw_ok(project, "job", "logs", str(job["id"]))
    assert "bad row 7" in log and "Executing Cell 3" not in log, log
    shown = gw_ok(project, "job", "show", str(job["id"]))
    assert "cell 2" in shown and "bad row 7" in shown
    assert json.loads(gw_ok(project, "model", "list", "--json")) == before


@pytest.mark.parametrize("args, message", [
    (["--image", "jupyter:v1", "--notebook", "missing.ipynb"], "no such file"),
    (["--image", "jupyter:v1", "--notebook", "../main.ipynb"], "inside the algorithm"),
    (["--image", "jupyter:v1", "--notebook", "notebooks/main.ipynb", "--", "python", "x.py"],
     "not both"),
    (["--image", "jupyter:v1", "--notebook", "notebooks/main.ipynb", "--param", "1x=2"],
     "--param"),
    (["--image", "plain:v1", "--notebook", "notebooks/main.ipynb"],
     "has no Jupyter kernel and no nbclient or papermill"),
])
def test_headless_bad_input_is_refused_before_submission(project, args, message):
    before = json.loads(gw_ok(project, "job", "list", "--json"))
    proc = run_gw("job", "submit", "--algo", "project", *args, env=project, check=False)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert json.loads(gw_ok(project, "job", "list", "--json")) == before
