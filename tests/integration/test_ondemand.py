"""The Open OnDemand apps of `gw ood install`, without a portal: their ERB rendered by real
Ruby with the values OnDemand passes, the session run as a job on the real local Slurm by a
stand-in for OnDemand's job wrapper (tests/support/ood.py), the view's link followed, and
the view drawn by headless Chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO, run_gw
from tests.integration.conftest import gw_ok
from tests.support.ood import connection, render, start_session

pytestmark = pytest.mark.container
SCREENSHOT = REPO / "docs" / "images" / "ondemand-view.png"


@pytest.fixture(scope="module")
def portal(jupyter_home, tmp_path_factory):
    """A home with JupyterLab (the session's site image) and busybox images, an algorithm
    and a dataset; the apps."""
    from tests.support.images import busybox_rootfs, make_archive

    flow_home = jupyter_home
    base = tmp_path_factory.mktemp("ood")
    plain = make_archive(base / "bb.tar", [busybox_rootfs(base / "rootfs")],
                         env={"PATH": "/bin"}, workdir="/", cmd=["sh"])
    gw_ok(flow_home, "image", "import", str(plain), "--name", "busybox:v1", "-q")
    (base / "algo").mkdir()
    (base / "algo" / "train.py").write_text("print('v1')\n")
    gw_ok(flow_home, "algo", "push", str(base / "algo"), "--name", "nbalgo", "-q")
    (base / "data").mkdir()
    (base / "data" / "d.txt").write_text("portal data\n")
    gw_ok(flow_home, "data", "push", str(base / "data"), "--name", "ds", "-q")
    apps = base / "apps"
    out = gw_ok(flow_home, "ood", "install", str(apps), "--cluster", "gw")
    assert "gw_notebook" in out and "gw_training" in out and "gw_dashboard" in out
    return {"env": flow_home, "apps": apps, "base": base}


def test_install_writes_complete_apps_and_refuses_to_overwrite(portal):
    for app, extra in (("gw_notebook", ["template/after.sh.erb"]), ("gw_training", [])):
        for name in ["manifest.yml", "form.yml.erb", "submit.yml.erb", "view.html.erb",
                     "template/before.sh.erb", "template/script.sh.erb", "README.md", *extra]:
            assert (portal["apps"] / app / name).is_file(), (app, name)
            # OnDemand gives a rendered file its .erb's mode and runs script.sh itself.
            mode = (portal["apps"] / app / name).stat().st_mode & 0o777
            assert mode == (0o755 if name == "template/script.sh.erb" else 0o644), (app, name)
    proc = run_gw("ood", "install", str(portal["apps"]), "--cluster", "gw", env=portal["env"],
                  check=False)
    assert proc.returncode == 2 and "--force" in proc.stderr
    proc = run_gw("ood", "install", str(portal["base"] / "x"), "--cluster", "bad name",
                  env=portal["env"], check=False)
    assert proc.returncode == 2 and not (portal["base"] / "x" / "gw_notebook").exists()


# What Passenger's Python loader (wsgi-loader.py) does with an app: import passenger_wsgi.py
# from the app's directory in the system's python3 and serve its ``application``; here
# through wsgiref.
PASSENGER_LOADER = """
import importlib.util, os, sys, wsgiref.simple_server
os.chdir(sys.argv[1])
spec = importlib.util.spec_from_file_location("passenger_wsgi", "passenger_wsgi.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
application = module.application
server = wsgiref.simple_server.make_server("127.0.0.1", 0, application)
print(server.server_port, sys.prefix, flush=True)
server.serve_forever()
"""


def test_the_dashboard_app_runs_as_passenger_runs_it_under_its_base_uri(portal, tmp_path):
    app = portal["apps"] / "gw_dashboard"
    for name in ("manifest.yml", "passenger_wsgi.py", "README.md"):
        assert (app / name).is_file() and (app / name).stat().st_mode & 0o777 == 0o644, name
    loader = tmp_path / "wsgi-loader.py"
    loader.write_text(PASSENGER_LOADER)
    base = "/pun/sys/gw_dashboard"
    env = {**os.environ, **portal["env"], "PASSENGER_BASE_URI": base}
    server = subprocess.Popen(["/usr/bin/python3", str(loader), str(app)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = server.stdout.readline() if server.stdout else ""
        assert line, server.stderr.read() if server.stderr else "no output"
        port, prefix = line.split()
        assert Path(prefix) != Path("/usr"), "the app did not move into gw's virtualenv"
        for page in ("/jobs", "/images", "/algorithms", "/notebooks", "/models",
                     "/templates", "/jobs/new"):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{base}{page}",
                                        timeout=30) as answer:
                html = answer.read().decode()
            links = re.findall(r'(?:href|src|action)="(/[^"]*)"', html)
            assert links and all(link.startswith(base + "/") for link in links), (page, links)
        assert 'value="nbalgo"' in html   # the job form offers the person's algorithm
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_form_offers_the_persons_own_images_algorithms_and_datasets(portal):
    gw_ok(portal["env"], "template", "save", "tpl", "--algo", "nbalgo", "--image",
          "busybox:v1", "--data", "ds", "--mem", "256M", "--", "sh", "-c",
          "cat /dataset/d.txt > /model/out.txt && echo 'from the template'")
    for app, blank in (("gw_notebook", []), ("gw_training", [""])):
        form = render(portal["apps"] / app / "form.yml.erb", {}, portal["env"], as_yaml=True)
        assert form["cluster"] == "gw"
        options = {name: [value for _label, value in spec["options"]]
                   for name, spec in form["attributes"].items() if "options" in spec}
        assert options["gw_image"] == [*blank, "busybox:v1", "jupyter:v1"]
        assert options["gw_algo"] == [*blank, "nbalgo", "nbalgo@v1"]
        assert options["gw_data"] == ["", "ds", "ds@v1"]
        assert form["attributes"]["bc_num_hours"]["value"] == 2
        if app == "gw_training":
            assert options["gw_template"] == ["", "tpl"]
            assert form["attributes"]["gw_restarts"]["value"] == 0
            assert "gw_restarts" in form["form"]


def test_a_portal_session_is_a_gateway_notebook_with_a_working_link(portal, tmp_path):
    env = portal["env"]
    session = start_session(portal["apps"] / "gw_notebook", tmp_path / "staged",
                            {"gw_image": "jupyter:v1", "gw_algo": "nbalgo", "gw_data": "ds",
                             "gw_flavor": "", "bc_num_hours": "1"}, env)
    job_id = None
    try:
        native = session["submit"]["script"]["native"]
        assert "--time=0-01:00:00" in native
        assert any(a.startswith("--signal=B:USR1@") for a in native)
        conn = connection(session["staged"])
        job_id = int(conn["gw_job"])
        # gw adopted the portal's job: it is a notebook like one started with gw.
        listed = json.loads(gw_ok(env, "notebook", "list", "--json"))
        assert [(n["id"], n["slurm_job_id"]) for n in listed] == [
            (job_id, str(session["slurm_id"]))]
        shown = json.loads(gw_ok(env, "notebook", "show", str(job_id), "--json"))
        assert shown["state"] == "RUNNING"
        assert f"/node/{conn['host']}/{conn['port']}/" in shown["url"]
        assert shown["token"] == conn["password"] and shown["data"] == "ds@v1"

        view = render(portal["apps"] / "gw_notebook" / "view.html.erb", conn, env)
        link = re.search(r'href="([^"]+)"', view).group(1)
        assert link == f"/node/{conn['host']}/{conn['port']}/lab?token={conn['password']}"
        # OnDemand's /node proxy forwards the whole path to host:port.
        with urllib.request.urlopen(f"http://{conn['host']}:{conn['port']}{link}",
                                    timeout=20) as page:
            assert page.status == 200 and "JupyterLab" in page.read().decode()
        _screenshot(view, tmp_path)

        # An edit made in the portal's JupyterLab becomes the next algorithm version.
        api = f"http://{conn['host']}:{conn['port']}/node/{conn['host']}/{conn['port']}/"
        request = urllib.request.Request(
            api + "api/contents/from_portal.py", method="PUT",
            data=json.dumps({"type": "file", "format": "text",
                             "content": "print('edited in the portal')\n"}).encode(),
            headers={"Authorization": f"token {conn['password']}",
                     "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=20) as answer:
            assert answer.status in (200, 201)
    finally:
        if job_id is None:  # never leave the session's job running
            subprocess.run(["scancel", str(session["slurm_id"])], check=False)
        else:
            stopped = json.loads(gw_ok(env, "notebook", "stop", str(job_id), "--wait",
                                       "--json"))
    assert stopped["state"] in ("STOPPED", "COMPLETED", "CANCELLED"), stopped
    versions = json.loads(gw_ok(env, "algo", "versions", "nbalgo", "--json"))
    assert versions[-1]["origin"] == f"notebook {job_id}"
    saved = Path(versions[-1]["path"]) / "from_portal.py"
    assert saved.read_text() == "print('edited in the portal')\n"


def training_session(portal, tmp_path, form: dict[str, str]) -> tuple[dict, dict]:
    """Launch the training app with ``form`` (over the empty defaults); returns the
    session and its connection values (the session's job cancelled if there are none)."""
    values = {"gw_template": "", "gw_image": "busybox:v1", "gw_algo": "nbalgo@v1",
              "gw_data": "", "gw_flavor": "", "bc_num_hours": "1", **form}
    session = start_session(portal["apps"] / "gw_training", tmp_path / "staged", values,
                            portal["env"])
    try:
        return session, connection(session["staged"])
    except BaseException:
        subprocess.run(["scancel", str(session["slurm_id"])], check=False)
        raise


def job_when_ended(env, job_id: int) -> dict:
    """`gw job show --json` of the job once it has ended (or after two minutes)."""
    done = json.loads(gw_ok(env, "job", "show", str(job_id), "--json"))
    for _ in range(120):
        if done["state"] not in ("SUBMITTING", "PENDING", "RUNNING"):
            break
        subprocess.run(["sleep", "1"], check=True)
        done = json.loads(gw_ok(env, "job", "show", str(job_id), "--json"))
    return done


def test_a_portal_training_job_is_a_gateway_job(portal, tmp_path):
    env = portal["env"]
    session, conn = training_session(portal, tmp_path, {
        "gw_data": "ds",
        "gw_command": "cat /dataset/d.txt > /model/out.txt && echo 'it ran'"})
    job_id = int(conn["gw_job"])
    view = render(portal["apps"] / "gw_training" / "view.html.erb", conn, env)
    assert f"files/fs/{conn['gw_job_dir']}" in view and f"gw job show {job_id}" in view
    done = job_when_ended(env, job_id)
    assert done["state"] == "COMPLETED" and done["slurm_job_id"] == str(session["slurm_id"]), done
    assert "it ran" in gw_ok(env, "job", "logs", str(job_id))
    model = done["model"]
    assert gw_ok(env, "model", "cat", model, "out.txt") == "portal data\n"


def test_a_portal_training_job_on_several_tasks_is_a_gang(portal, tmp_path):
    env = portal["env"]
    _session, conn = training_session(portal, tmp_path, {
        "gw_nodes": "1", "gw_tasks_per_node": "2", "gw_launcher": "",
        "gw_command": "echo \"$RANK of $WORLD_SIZE\" > /model/rank$RANK"})
    done = job_when_ended(env, int(conn["gw_job"]))
    assert done["state"] == "COMPLETED" and done["shape"] == "gang", done
    assert done["ranks"] == 2 and done["resources"]["tasks_per_node"] == 2
    assert gw_ok(env, "model", "cat", done["model"], "rank1") == "1 of 2\n"
    assert gw_ok(env, "model", "cat", done["model"], "rank0") == "0 of 2\n"


def test_a_portal_training_job_with_restarts_resumes_after_a_requeue(portal, tmp_path):
    """Restarts from the form: the portal's job, requeued (as a preemption or an admin
    does), runs the portal's wrapper again; the gateway's script is attempt 2, resumed,
    with the first attempt's /model; one version, the attempts in the job's record."""
    env = portal["env"]
    session, conn = training_session(portal, tmp_path, {
        "gw_restarts": "1",
        "gw_command": "if [ -f /model/step ]; then echo \"$GW_ATTEMPT $GW_RESUMED\" > "
                      "/model/resumed; exit 0; fi; echo 1 > /model/step; sleep 300"})
    job_id, slurm_id = int(conn["gw_job"]), str(session["slurm_id"])
    step = Path(conn["gw_job_dir"]) / "model" / "step"
    deadline = time.monotonic() + 120
    while not step.exists():
        assert time.monotonic() < deadline, gw_ok(env, "job", "logs", str(job_id))
        time.sleep(1)
    subprocess.run(["scontrol", "requeue", slurm_id], check=True, env={**os.environ, **env})
    done = job_when_ended(env, job_id)   # Slurm holds attempt 2 back for cred_expire
    assert done["state"] == "COMPLETED" and done["slurm_job_id"] == slurm_id, done
    assert [a["attempt"] for a in done["attempts"]] == [1, 2], done["attempts"]
    assert done["attempts"][-1]["end"] == "exit 0", done["attempts"]
    assert gw_ok(env, "model", "cat", done["model"], "resumed") == "2 1\n"
    assert gw_ok(env, "model", "cat", done["model"], "step") == "1\n"


def test_a_launch_while_slurm_answers_slowly_still_gives_a_session(portal, tmp_path):
    """gw says "waiting for Slurm" on stderr when Slurm is slow; the portal reads only its
    stdout, so Launch still parses gw's answer."""
    slow = tmp_path / "slow-bin"
    slow.mkdir()
    real = shutil.which("sinfo")
    (slow / "sinfo").write_text(f"#!/bin/sh\nsleep 1.5\nexec {real} \"$@\"\n")
    (slow / "sinfo").chmod(0o755)
    env = {**portal["env"], "PATH": f"{slow}:{portal['env'].get('PATH', os.environ['PATH'])}"}
    said = run_gw("job", "submit", "--test-only", "--json", "--image", "busybox:v1", "--algo",
                  "nbalgo", "--time", "1:00:00", "--", "true", env=env)
    assert "waiting for Slurm" in said.stderr, said.stderr   # the fault is real
    session = start_session(portal["apps"] / "gw_training", tmp_path / "staged",
                            {"gw_template": "", "gw_image": "busybox:v1", "gw_algo": "nbalgo",
                             "gw_data": "", "gw_flavor": "", "bc_num_hours": "1",
                             "gw_command": "echo 'slow but fine'"}, env)
    try:
        conn = connection(session["staged"])
    except BaseException:
        subprocess.run(["scancel", str(session["slurm_id"])], check=False)
        raise
    job_id = int(conn["gw_job"])
    for _ in range(120):
        done = json.loads(gw_ok(env, "job", "show", str(job_id), "--json"))
        if done["state"] not in ("SUBMITTING", "PENDING", "RUNNING"):
            break
        subprocess.run(["sleep", "1"], check=True)
    assert done["state"] == "COMPLETED", done
    assert "slow but fine" in gw_ok(env, "job", "logs", str(job_id))


def test_a_portal_training_job_from_a_template(portal, tmp_path):
    env = portal["env"]
    session = start_session(portal["apps"] / "gw_training", tmp_path / "staged",
                            {"gw_template": "tpl", "gw_image": "", "gw_algo": "", "gw_data": "",
                             "gw_flavor": "", "gw_command": "", "bc_num_hours": "1"}, env)
    try:
        conn = connection(session["staged"])
    except BaseException:
        subprocess.run(["scancel", str(session["slurm_id"])], check=False)
        raise
    job_id = int(conn["gw_job"])
    for _ in range(120):
        done = json.loads(gw_ok(env, "job", "show", str(job_id), "--json"))
        if done["state"] not in ("SUBMITTING", "PENDING", "RUNNING"):
            break
        subprocess.run(["sleep", "1"], check=True)
    assert done["state"] == "COMPLETED", done
    assert done["template"] == "tpl" and done["origin"] == "template"
    assert "from the template" in gw_ok(env, "job", "logs", str(job_id))


def test_a_submission_gw_refuses_names_the_reason_in_the_portal(portal, tmp_path):
    with pytest.raises(RuntimeError, match="no image named 'missing:v1'"):
        start_session(portal["apps"] / "gw_notebook", tmp_path / "staged",
                      {"gw_image": "missing:v1", "gw_algo": "nbalgo", "gw_data": "",
                       "gw_flavor": "", "bc_num_hours": "1"}, portal["env"])
    assert json.loads(gw_ok(portal["env"], "job", "list", "--json", "--state", "SUBMITTING")) == []


def _screenshot(view: str, tmp_path: Path) -> None:
    """The session card as OnDemand frames it, drawn by headless Chromium."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "chromium is not installed (scripts/install-deps.sh installs it)"
    page = tmp_path / "card.html"
    page.write_text(CARD.replace("{{ view }}", view))
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                    "--hide-scrollbars", f"--screenshot={tmp_path / 'card.png'}",
                    "--window-size=760,200", page.as_uri()],
                   capture_output=True, timeout=120, check=True)
    assert (tmp_path / "card.png").stat().st_size > 5000
    if os.environ.get("GW_UPDATE_SCREENSHOTS"):  # the picture in docs/ondemand.md
        shutil.copyfile(tmp_path / "card.png", SCREENSHOT)


CARD = """<!doctype html><html><head><meta charset="utf-8"><style>
body { font-family: sans-serif; margin: 16px; background: #f4f4f4; }
.card { background: white; border: 1px solid #ccc; border-radius: 4px; max-width: 720px; }
.card-header { background: #e7f1e7; padding: 8px 12px; border-bottom: 1px solid #ccc; }
.badge { background: #28a745; color: white; border-radius: 3px; padding: 2px 6px; }
.card-body { padding: 12px; font-size: 14px; }
.btn-primary { display: inline-block; background: #0d6efd; color: white; padding: 6px 12px;
  border-radius: 4px; text-decoration: none; }
code { background: #f0f0f0; padding: 1px 3px; }
</style></head><body><div class="card">
<div class="card-header"><b>Gateway JupyterLab</b> (stand-in frame)
<span class="badge">Running</span></div>
<div class="card-body">{{ view }}</div></div></body></html>"""
