"""The dashboard in headless Chromium (Debian's chromium and chromedriver, driven by
Selenium) against `gw web` on the real local Slurm, through the seed's flow: an image
imported and its state watched, an algorithm and a dataset uploaded as zips, a notebook
started and opened, a training job from the form, saved as a template, a second job from
the template with one field changed, its log growing, its load chart, its model version
downloaded, a background task from main.ipynb with a parameter, and a refused form.

With GW_UPDATE_SCREENSHOTS=1 the pages' pictures are written to docs/images/."""

from __future__ import annotations

import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import time
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, gw_executable
from tests.integration.conftest import gw_ok
from tests.integration.test_notebooks import notebook_json

pytestmark = pytest.mark.container
SHOTS = REPO / "docs" / "images"
TRAIN = """#!/bin/sh
lr="$1"
echo "training with lr=$lr on $(cat /dataset/data/rows.txt) rows"
for step in 1 2 3 4 5 6; do
    echo "step $step"; i=0; while [ $i -lt 100000 ]; do i=$((i + 1)); done; sleep 1   # CPU to chart
done
echo "lr=$lr" > /model/weights.txt
echo done
"""


def _zip(path: Path, files: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return path


@pytest.fixture(scope="module")
def web(jupyter_home, tmp_path_factory) -> Iterator[dict]:
    """`gw web` on a fresh home (the session's JupyterLab site image in it), its images
    built by Slurm jobs as a site's are; yields its address and environment."""
    env = {**os.environ, **jupyter_home, "GW_IMAGE_BUILD": "slurm"}
    server = subprocess.Popen([gw_executable(), "web", "--json"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = server.stdout.readline() if server.stdout else ""
        assert line, "gw web printed no address"
        address = json.loads(line)
        yield {**address, "env": jupyter_home, "base": tmp_path_factory.mktemp("web")}
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture(scope="module")
def browser(web) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,1000"):
        options.add_argument(flag)
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.set_page_load_timeout(60)
    try:
        driver.get(web["url"])
        yield driver
    finally:
        driver.quit()


def _until(what: str, check: Callable[[], object], timeout: float = 180,
           every: float = 1.0) -> object:
    end = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


def _shot(driver, name: str) -> None:
    path = Path(os.environ.get("PYTEST_SHOTS", "/tmp")) / f"dashboard-{name}.png"
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 10_000, name
    if os.environ.get("GW_UPDATE_SCREENSHOTS"):
        SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, SHOTS / f"dashboard-{name}.png")


def _page(driver, web, path: str) -> None:
    driver.get(f"http://127.0.0.1:{web['port']}{path}")


def _by(driver, css: str):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, css)


def _all(driver, css: str):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, css)


def _fill(driver, form: str, values: dict[str, str]) -> None:
    from selenium.webdriver.support.ui import Select

    for name, value in values.items():
        field = _by(driver, f"{form} [name={name}]")
        if not field.is_displayed():   # in a closed <details> section: open it, as a person would
            driver.execute_script("arguments[0].closest('details').open = true", field)
        if field.tag_name == "select":
            Select(field).select_by_value(value)
        else:
            field.clear()
            field.send_keys(value)


def _fetch(driver, web, href: str) -> bytes:
    cookie = driver.get_cookie("gw_token")["value"]
    url = href if href.startswith("http") else f"http://127.0.0.1:{web['port']}{href}"
    request = urllib.request.Request(url, headers={"Cookie": f"gw_token={cookie}"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return bytes(response.read())


def _state(driver) -> str:
    return str(_by(driver, "#job-state").text.split(":")[0].strip())


def _home_counts(env: dict[str, str]) -> tuple[int, ...]:
    conn = sqlite3.connect(Path(env["GW_HOME"]) / "gateway.db")
    try:
        return tuple(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                     for table in ("collections", "versions", "jobs", "templates", "images"))
    finally:
        conn.close()


def _submit_training(driver, web, form_values: dict[str, str]) -> int:
    _fill(driver, "#job-form", form_values)
    _by(driver, "#submit-job").click()
    try:
        _until("the job page", lambda: "/jobs/" in driver.current_url
               and driver.current_url.rstrip("/").split("/")[-1].isdigit(), 30, 0.2)
    except AssertionError:
        errors = [e.text for e in _all(driver, ".field-error, .error")]
        raise AssertionError(f"the job form was not taken: {errors}") from None
    return int(driver.current_url.rstrip("/").split("/")[-1])


def _wait_completed(driver, web, job_id: int, timeout: float = 240) -> None:
    def ended() -> str | None:
        _page(driver, web, f"/jobs/{job_id}")
        state = _state(driver)
        return state if state not in ("SUBMITTING", "PENDING", "RUNNING") else None

    assert _until(f"job {job_id} to end", ended, timeout, 2) == "COMPLETED", \
        _by(driver, "#summary").text


def test_the_seeds_flow_in_a_browser(web, browser, busybox_archive):
    driver, base = browser, web["base"]
    assert driver.current_url.endswith("/jobs")       # the token left the address bar
    assert "Training jobs" in driver.title

    # 镜像管理: import, watch 制作中 become 制作成功
    _page(driver, web, "/images")
    _fill(driver, "#import-form", {"name": "bb:v1", "path": str(busybox_archive)})
    _by(driver, "#import-form button").click()
    row = '#images tr[data-image="bb:v1"]'
    _until("the imported image's row", lambda: _all(driver, row), 60, 0.2)
    first = _by(driver, row).text
    # BUILDING while its build job runs (READY already when the small build won the race
    # with this page on a loaded machine); either way made by a build job
    assert ("BUILDING" in first or "READY" in first) and "build job" in first, first
    _shot(driver, "images-building")
    _until("the image to be made", lambda: (_page(driver, web, "/images"),
                                            "READY" in _by(driver, row).text)[1], 180, 2)
    _shot(driver, "images")
    # the same content uploaded from the browser: stored once, its upload gone once read
    _by(driver, "#upload-form [name=name]").send_keys("uploaded:v1")
    _by(driver, "#upload-form [name=archive]").send_keys(str(busybox_archive))
    _by(driver, "#upload-form button").click()
    uploaded = '#images tr[data-image="uploaded:v1"]'
    _until("the uploaded image", lambda: _all(driver, uploaded), 60, 0.5)
    assert "READY" in _by(driver, uploaded).text      # the same digest: already made
    archives = Path(web["env"]["GW_HOME"]) / "archives"
    assert not archives.exists() or list(archives.iterdir()) == []

    # 算法管理 / 数据集管理: zips uploaded through the form (with its progress bar)
    algo_zip = _zip(base / "proj.zip", {"proj/train.sh": TRAIN})
    _page(driver, web, "/algorithms")
    _fill(driver, "#new-form", {"name": "proj", "framework": "shell", "task": "demo",
                                "description": "the seed's algorithm"})
    _by(driver, "#f-archive").send_keys(str(algo_zip))
    _by(driver, "#new-form button").click()
    _until("the algorithm's versions", lambda: _all(driver, '#versions tr[data-version]'),
           60, 0.5)
    assert _by(driver, "#versions").text.count("proj@v1") == 1
    data_zip = _zip(base / "rows.zip", {"data/rows.txt": "42\n"})
    _page(driver, web, "/datasets")
    _fill(driver, "#new-form", {"name": "rows"})
    _by(driver, "#f-archive").send_keys(str(data_zip))
    _by(driver, "#new-form button").click()
    _until("the dataset's versions", lambda: _all(driver, '#versions tr[data-version]'),
           60, 0.5)
    _shot(driver, "dataset-versions")
    _page(driver, web, "/algorithms")
    assert "shell" in _by(driver, '#collections tr[data-name="proj"]').text
    _shot(driver, "algorithms")

    # a refused form: its error next to the field, the home unchanged
    before = _home_counts(web["env"])
    _fill(driver, "#new-form", {"name": "no good!"})
    _by(driver, "#f-archive").send_keys(str(algo_zip))
    _by(driver, "#new-form button").click()
    error = _until("the form's error", lambda: _all(driver, "#error-name"), 30, 0.3)
    assert "invalid algorithm name" in error[0].text
    assert _home_counts(web["env"]) == before
    assert list((Path(web["env"]["GW_HOME"]) / "tmp" / "uploads").iterdir()) == []
    _shot(driver, "refused-form")

    # 训练管理: a job from the form, saved as a template
    _page(driver, web, "/jobs/new")
    training = {"algo": "proj", "image": "bb:v1", "data": "rows", "mem": "256M",
                "command": "sh /code/proj/train.sh 0.1"}
    _fill(driver, "#job-form", {**training, "template_name": "lr-run"})
    _shot(driver, "job-form")
    _by(driver, "#save-template").click()
    _until("the templates page", lambda: _all(driver, '#templates tr[data-template="lr-run"]'),
           30, 0.3)
    _page(driver, web, "/jobs/new")
    first_job = _submit_training(driver, web, training)

    # the log grows while it runs
    seen = _until("the first steps in the log",
                  lambda: "step 2" in _by(driver, "#log").text and _by(driver, "#log").text,
                  120, 0.5)
    assert "done" not in str(seen)
    _until("the last line in the log", lambda: "done" in _by(driver, "#log").text, 120, 0.5)
    _wait_completed(driver, web, first_job)
    assert "training with lr=0.1 on 42 rows" in _by(driver, "#log").text
    assert _all(driver, "#load svg polyline.series-cpu"), _by(driver, "#load").text
    _shot(driver, "job")

    # a second job from the template, one field changed
    _page(driver, web, "/templates")
    _shot(driver, "templates")
    _by(driver, '#templates tr[data-template="lr-run"] a').click()
    assert _by(driver, "#f-command").get_attribute("value") == "sh /code/proj/train.sh 0.1"
    second_job = _submit_training(driver, web, {"command": "sh /code/proj/train.sh 0.2"})
    _wait_completed(driver, web, second_job)
    summary = _by(driver, "#summary").text
    assert "lr-run" in summary and "command" in summary, summary
    assert "proj@v2" in _by(driver, "#model").text

    # 我的模型: the version, its lineage, its preview, its download
    _by(driver, "#model a").click()
    assert "lr=0.2" in _by(driver, "pre.preview").text
    assert f"{second_job}" in _by(driver, "#lineage").text
    _shot(driver, "model")
    packed = _fetch(driver, web, _by(driver, "#download").get_attribute("href"))
    with tarfile.open(fileobj=io.BytesIO(packed)) as tar:
        weights = tar.extractfile("proj-v2/weights.txt")
        assert weights is not None and weights.read() == b"lr=0.2\n"

    # a sweep from the form: one array job, a task (and a model version) per value
    _page(driver, web, "/jobs/new")
    sweep = _submit_training(driver, web, {**training, "command": "sh /code/proj/train.sh "
                                           "{{ lr }}", "sweep": "lr=0.3,0.4"})
    _wait_completed(driver, web, sweep)
    tasks = _by(driver, "#tasks").text
    assert "lr=0.3" in tasks and "lr=0.4" in tasks and tasks.count("COMPLETED") == 2, tasks
    _page(driver, web, "/jobs")
    _shot(driver, "jobs")
    _page(driver, web, "/models/proj")
    _shot(driver, "model-versions")


def test_a_notebook_and_a_background_task_from_the_dashboard(web, browser):
    driver, base = browser, web["base"]
    project = base / "nbproj"
    project.mkdir()
    (project / "main.ipynb").write_text(notebook_json([
        ("lr = 0.1\n", ["parameters"]),
        ("print(f'background lr={lr}')\nopen('/model/result.txt', 'w').write(str(lr))\n", []),
    ]))
    gw_ok(web["env"], "algo", "push", str(project), "--name", "nbproj", "-q")

    # Notebook: started from the form, opened, stopped
    _page(driver, web, "/notebooks")
    _fill(driver, "#notebook-form", {"image": "jupyter:v1", "algo": "nbproj"})
    _by(driver, "#start-notebook").click()

    def opened() -> str | None:
        _page(driver, web, "/notebooks")
        links = _all(driver, "#notebooks a.open")
        return links[0].get_attribute("href") if links else None

    try:
        url = str(_until("the notebook to answer", opened, 240, 3))
        _shot(driver, "notebooks")

        def lab() -> bytes:
            try:   # the link is shown once the server said where it listens; it may still start
                with urllib.request.urlopen(url, timeout=30) as response:
                    return bytes(response.read()) if response.status == 200 else b""
            except OSError:
                return b""

        assert b"JupyterLab" in bytes(_until("JupyterLab to answer", lab, 120, 1))
        _by(driver, '#notebooks button.danger').click()
        _until("the notebook to stop", lambda: (_page(driver, web, "/notebooks"), not _all(
            driver, "#notebooks a.open"))[1], 120, 2)
    finally:   # never leave it holding the node for the tests after this one
        for notebook in json.loads(gw_ok(web["env"], "notebook", "list", "--json")):
            if notebook["state"] in ("PENDING", "STARTING", "RUNNING"):
                gw_ok(web["env"], "notebook", "stop", str(notebook["id"]))

    # a background task: main.ipynb with a parameter
    _page(driver, web, "/jobs/new?algo=nbproj&notebook=main.ipynb")
    job_id = _submit_training(driver, web, {"image": "jupyter:v1", "mem": "1G",
                                            "param": "lr=0.5"})
    _wait_completed(driver, web, job_id, 300)
    assert "background lr=0.5" in _until("the task's output", lambda: _by(driver, "#log").text
                                         if "background" in _by(driver, "#log").text else "",
                                         30, 0.5)
    _by(driver, "#model a").click()
    assert "0.5" in _by(driver, "pre.preview").text
