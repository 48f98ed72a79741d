"""The dashboard's guard and forms, through Flask's test client on a private home (the
pages against real Slurm and a browser: tests/integration/test_dashboard.py)."""

from __future__ import annotations

import io
import re
import sqlite3
import zipfile
from pathlib import Path

import pytest

from gateway.web.app import create_app
from gateway.web.pages import field_of
from gateway.web.security import csrf_token, foreign_origin, load_secret

TOKEN = "t0ken-of-this-server"


@pytest.fixture()
def client(gw_env: Path):
    app = create_app(access_token=TOKEN)
    app.testing = True
    test_client = app.test_client()
    assert test_client.get(f"/jobs?token={TOKEN}").status_code == 302
    return test_client


def _csrf(client) -> str:
    page = client.get("/algorithms").get_data(as_text=True)
    return re.search(r'name="csrf" value="([0-9a-f]{64})"', page).group(1)


def _zip(top: str = "proj") -> io.BytesIO:
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as archive:
        archive.writestr(f"{top}/train.py", "print('hi')\n")
    data.seek(0)
    return data


def _errors(response) -> list[str]:
    page = response.get_data(as_text=True)
    return re.findall(r'id="(?:error-\w+|form-error|page-error)">([^<]*)<', page)


def test_nothing_is_served_without_the_token(gw_env: Path):
    app = create_app(access_token=TOKEN)
    plain = app.test_client()
    for url in ("/", "/jobs", "/images", "/models", "/static/dashboard.js"):
        assert plain.get(url).status_code == 403, url
    assert plain.get("/jobs?token=wrong").status_code == 403
    plain.set_cookie("gw_token", "wrong")
    assert plain.get("/jobs").status_code == 403


def test_the_token_becomes_a_strict_cookie_and_leaves_the_address(gw_env: Path):
    app = create_app(access_token=TOKEN)
    browser = app.test_client()
    answer = browser.get(f"/models?token={TOKEN}&x=1")
    assert answer.status_code == 302 and answer.headers["Location"] == "/models?x=1"
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    page = browser.get("/models")
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]


def test_a_post_needs_the_form_token_and_this_origin(client, gw: object):
    token = _csrf(client)
    form = {"name": "proj", "path": "/"}
    assert client.post("/algorithms/new", data=form).status_code == 403
    assert client.post("/algorithms/new", data={**form, "csrf": "0" * 64}).status_code == 403
    forged = client.post("/algorithms/new", data={**form, "csrf": token},
                         headers={"Origin": "https://evil.example"})
    assert forged.status_code == 403
    assert client.post("/algorithms/new", data={**form, "csrf": token},
                       headers={"Origin": "null"}).status_code == 403
    assert _rows(gw_home(client)) == 0


def gw_home(client) -> Path:
    from gateway.home.config import load_config

    return load_config().home


def _rows(home: Path, table: str = "collections") -> int:
    conn = sqlite3.connect(home / "gateway.db")
    try:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    finally:
        conn.close()


def test_an_upload_makes_a_version_and_a_refused_one_leaves_nothing(client):
    token = _csrf(client)
    made = client.post("/algorithms/new", data={
        "csrf": token, "name": "proj", "framework": "PyTorch",
        "archive": (_zip(), "proj.zip")}, content_type="multipart/form-data")
    assert made.status_code == 302 and made.headers["Location"] == "/algorithms/proj"
    home = gw_home(client)
    assert (home / "algo" / "proj" / "v1" / "proj" / "train.py").is_file() or any(
        home.rglob("train.py"))
    page = client.get("/algorithms").get_data(as_text=True)
    assert "PyTorch" in page
    before = _rows(home, "versions")
    refused = client.post("/algorithms/new", data={
        "csrf": token, "name": "bad name!", "archive": (_zip(), "proj.zip")},
        content_type="multipart/form-data")
    assert refused.status_code == 400
    assert _errors(refused) and "invalid algorithm name" in _errors(refused)[0]
    not_zip = client.post("/algorithms/new", data={
        "csrf": token, "name": "other", "archive": (io.BytesIO(b"x"), "x.exe")},
        content_type="multipart/form-data")
    assert not_zip.status_code == 400 and "upload a .zip" in _errors(not_zip)[0]
    assert _rows(home, "versions") == before
    assert list((home / "tmp" / "uploads").iterdir()) == []


def test_an_upload_past_the_limit_is_refused_before_it_is_stored(gw_env: Path, tmp_path: Path):
    (tmp_path / "no-user.toml").write_text("max_upload_bytes = 1000\n")
    app = create_app(access_token=TOKEN)
    browser = app.test_client()
    browser.get(f"/jobs?token={TOKEN}")
    token = _csrf(browser)
    big = browser.post("/datasets/new", data={
        "csrf": token, "name": "big", "archive": (io.BytesIO(b"0" * 5000), "big.zip")},
        content_type="multipart/form-data")
    assert big.status_code == 413
    uploads = gw_env / "tmp" / "uploads"
    assert not uploads.exists() or list(uploads.iterdir()) == []


def test_an_uploaded_image_archive_that_is_no_image_leaves_nothing(client):
    token = _csrf(client)
    home = gw_home(client)
    refused = client.post("/images/upload", data={
        "csrf": token, "name": "bad:v1", "archive": (io.BytesIO(b"not a tar" * 100), "x.tar")},
        content_type="multipart/form-data")
    assert refused.status_code == 400 and _errors(refused), refused.get_data(as_text=True)
    wrong = client.post("/images/upload", data={
        "csrf": token, "name": "bad:v1", "archive": (io.BytesIO(b"x"), "x.zip")},
        content_type="multipart/form-data")
    assert wrong.status_code == 400 and "not a .tar" in _errors(wrong)[0]
    assert _rows(home, "images") == 0
    for folder in ("archives", "tmp/uploads"):
        assert not (home / folder).exists() or list((home / folder).iterdir()) == [], folder


def test_a_job_form_error_names_its_field_and_records_nothing(client):
    token = _csrf(client)
    answer = client.post("/jobs/new", data={"csrf": token, "algo": "proj",
                                            "command": "python train.py"})
    assert answer.status_code == 400
    page = answer.get_data(as_text=True)
    assert 'id="error-image"' in page and "missing --image" in page
    assert 'python train.py' in page          # the form keeps what was typed
    assert _rows(gw_home(client), "jobs") == 0
    bad_quote = client.post("/jobs/new", data={"csrf": token, "algo": "a", "image": "b:1",
                                               "command": "echo 'unclosed"})
    assert bad_quote.status_code == 400 and "shell words" in bad_quote.get_data(as_text=True)
    for fields, words in (({"save_seconds": "30"}, "goes with --restarts"),
                          ({"restarts": "-1"}, "invalid --restarts")):
        refused = client.post("/jobs/new", data={"csrf": token, "algo": "a", "image": "b:1",
                                                 "command": "true", **fields})
        assert refused.status_code == 400 and words in refused.get_data(as_text=True)
    assert _rows(gw_home(client), "jobs") == 0


def test_missing_things_are_404_with_the_gateways_line(client):
    for url, words in (("/jobs/424242", "no job 424242"), ("/models/nope", "no model"),
                       ("/algorithms/nope", "no algorithm"), ("/nowhere", "not found")):
        answer = client.get(url)
        assert answer.status_code == 404, url
        assert words in answer.get_data(as_text=True).lower(), url


def test_links_follow_the_base_uri_passenger_mounts_the_app_at(gw_env: Path, monkeypatch):
    monkeypatch.setenv("PASSENGER_BASE_URI", "/pun/sys/gw_dashboard")
    app = create_app()          # under OnDemand: no token, the portal authenticates
    browser = app.test_client()
    page = browser.get("/pun/sys/gw_dashboard/jobs").get_data(as_text=True)
    links = re.findall(r'(?:href|src|action)="([^"]+)"', page)
    assert links and all(link.startswith("/pun/sys/gw_dashboard/") for link in links), links
    # a server that says SCRIPT_NAME itself is taken at its word
    page = browser.get("/images", base_url="http://localhost/pun/dev/gw/")
    assert page.status_code == 200
    links = re.findall(r'(?:href|action)="([^"]+)"', page.get_data(as_text=True))
    assert all(link.startswith("/pun/dev/gw/") for link in links), links


def test_a_models_files_never_render_as_a_page(client, gw, tmp_path: Path):
    version_dir = tmp_path / "model-src"
    version_dir.mkdir()
    (version_dir / "report.html").write_text("<script>alert(1)</script>")
    (version_dir / "weights.bin").write_bytes(b"\0\1")
    (version_dir / "curve.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    gw.store("model").push(version_dir, "net", {})
    html = client.get("/models/net/v1/files/report.html")
    assert html.headers["Content-Type"].startswith("text/plain")
    assert html.headers["X-Content-Type-Options"] == "nosniff"
    binary = client.get("/models/net/v1/files/weights.bin")
    assert "attachment" in binary.headers["Content-Disposition"]
    assert client.get("/models/net/v1/files/curve.png").headers["Content-Type"] == "image/png"
    assert client.get("/models/net/v1/files/..%2F..%2Fgateway.db").status_code in (400, 404)
    page = client.get("/models/net/v1").get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert" not in page


def test_the_csrf_token_is_the_homes_and_origins_are_compared_by_host(tmp_path: Path):
    secret = load_secret(tmp_path / "secret")
    assert (tmp_path / "secret").stat().st_mode & 0o777 == 0o600
    assert load_secret(tmp_path / "secret") == secret
    assert csrf_token(secret) != csrf_token(load_secret(tmp_path / "other"))
    assert not foreign_origin("http://127.0.0.1:8000", None, "127.0.0.1:8000")
    assert foreign_origin(None, "http://evil/x", "127.0.0.1:8000")
    assert not foreign_origin(None, None, "127.0.0.1:8000")


def test_errors_land_next_to_the_field_they_name():
    assert field_of("missing --image: a job needs an algorithm and an image",
                    ("algo", "image")) == "image"
    assert field_of("invalid --time '1x'", ("name", "time")) == "time"
    assert field_of("Slurm did not answer", ("name", "time")) is None


def test_gw_web_prints_its_address_and_refuses_a_taken_port(gw_env: Path):
    import json
    import socket
    import subprocess
    import urllib.error
    import urllib.request

    from tests.conftest import gw_executable, run_gw

    server = subprocess.Popen([gw_executable(), "web", "--json"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    try:
        address = json.loads(server.stdout.readline())
        assert address["url"] == (f"http://127.0.0.1:{address['port']}/?token="
                                  f"{address['token']}")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{address['port']}/jobs", timeout=10)
        assert refused.value.code == 403
    finally:
        server.terminate()
        server.wait(timeout=30)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        proc = run_gw("web", "--port", str(taken.getsockname()[1]), check=False)
    assert proc.returncode == 2 and "cannot listen" in proc.stderr, proc.stderr
