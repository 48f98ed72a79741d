"""Every bad input is one clear line on stderr, exit 2 (1 for an outside failure), and the
home holds nothing new: no stray file, row or object. Run through the real `gw`."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.conftest import gw_executable, run_gw
from tests.integration.conftest import gw_ok


def home_state(env) -> tuple[list[str], list[tuple]]:
    """Every path under the home (but the database files) and every database row."""
    root = Path(env["GW_HOME"])
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*")
                   if not p.name.startswith("gateway.db"))
    conn = sqlite3.connect(root / "gateway.db")
    rows = []
    for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
        rows += [(table, *r) for r in conn.execute(f"SELECT * FROM {table}")]
    conn.close()
    return files, sorted(rows, key=repr)


@pytest.fixture(scope="module")
def home(flow_home, tmp_path_factory):
    """A home with an image and one algorithm version."""
    from tests.support.images import busybox_rootfs, make_archive

    base = tmp_path_factory.mktemp("bad")
    archive = make_archive(base / "bb.tar", [busybox_rootfs(base / "rootfs")],
                           env={"PATH": "/bin"}, workdir="/", cmd=["sh"])
    gw_ok(flow_home, "image", "import", str(archive), "--name", "bb:v1", "-q")
    (base / "algo").mkdir()
    (base / "algo" / "run.sh").write_text("echo hi\n")
    gw_ok(flow_home, "algo", "push", str(base / "algo"), "--name", "good", "-q")
    return {**flow_home, "base": str(base)}


def refused(env, *args, code=2, message="", extra_env=None):
    """Run a command that must be refused; check the line, the exit and the home."""
    before = home_state(env)
    proc = run_gw(*args, env={**env, **(extra_env or {})}, check=False)
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gw: error: "), proc.stderr
    assert message in proc.stderr, proc.stderr
    assert home_state(env) == before
    return proc


def zip_of(path: Path, members: dict[str, bytes | None]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            if data is None:
                zf.writestr(zipfile.ZipInfo(name), b"")
            else:
                zf.writestr(name, data)
    return path


def test_names_ending_in_a_newline(home, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_text("a")
    refused(home, "algo", "push", str(src), "--name", "evil\n", message="invalid algorithm name")
    refused(home, "job", "submit", "--algo", "good", "--image", "bb:v1\n", "--", "true",
            message="invalid image name")
    refused(home, "job", "submit", "--algo", "good", "--image", "bb:v1", "--model-name",
            "m\n", "--", "true", message="invalid model name")


def test_zip_holding_a_file_and_a_folder_of_one_name(home, tmp_path):
    archive = zip_of(tmp_path / "clash.zip", {"x": b"file", "x/y": b"inside"})
    refused(home, "algo", "push", str(archive), "--name", "clash", message="'x' is a file")
    archive = zip_of(tmp_path / "dup.zip", {"d/": None, "d": b"file"})
    refused(home, "data", "push", str(archive), "--name", "dup", message="appears twice")


def test_version_numbers_too_large_for_sqlite(home):
    refused(home, "algo", "show", "good@v99999999999999999999", message="invalid version")
    refused(home, "job", "submit", "--algo", "good@v9223372036854775808", "--image", "bb:v1",
            "--", "true", message="invalid version")


def test_model_download_into_a_missing_folder_or_onto_a_folder(home, tmp_path):
    job = json.loads(gw_ok(home, "job", "submit", "--json", "--wait", "--algo", "good",
                           "--image", "bb:v1", "--mem", "64M", "--", "sh", "-c",
                           "echo w > /model/w"))
    refused(home, "model", "download", job["model"], "-o", str(tmp_path / "no" / "m.tar.gz"),
            message="does not exist")
    refused(home, "model", "download", job["model"], "-o", str(tmp_path), message="directory")
    assert list(tmp_path.iterdir()) == []


def test_unreadable_file_in_a_pushed_directory(home, tmp_path):
    """Runs `gw` as the unprivileged user nobody (root reads everything)."""
    if shutil.which("setpriv") is None:
        pytest.fail("setpriv (util-linux) is missing")
    base = Path(tempfile_dir(tmp_path))
    src = base / "src"
    src.mkdir()
    (src / "ok.txt").write_text("fine")
    (src / "secret.txt").write_text("no")
    (src / "secret.txt").chmod(0o000)
    env = {**os.environ, **home, "GW_HOME": str(base / "home"),
           "GW_SITE_CONFIG": "/nonexistent/site.toml", "GW_USER_CONFIG": "/nonexistent/u.toml"}
    nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]
    proc = subprocess.run([*nobody, gw_executable(), "algo", "push", str(src), "--name",
                           "u", "-q"], env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "secret.txt" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    leftovers = [p for p in (base / "home").rglob("*") if p.is_file()
                 and not p.name.startswith(("gateway.db", ".gc.lock", "home.json"))]
    assert leftovers == []


def tempfile_dir(tmp_path: Path) -> str:
    """A directory the user nobody can use (pytest's tmp_path is private to root)."""
    import tempfile

    path = tempfile.mkdtemp(prefix="gw-nobody-", dir="/tmp")
    os.chmod(path, 0o777)
    return path


def test_config_value_of_the_wrong_type(home, tmp_path):
    for text, key in (('cpus = "many"\n', "cpus"), ("mem = 5\n", "mem"),
                      ("slurm_timeout = true\n", "slurm_timeout"),
                      ("max_upload_bytes = -1\n", "max_upload_bytes")):
        config = tmp_path / "user.toml"
        config.write_text(text)
        refused(home, "job", "list", message=key,
                extra_env={"GW_USER_CONFIG": str(config)})


@pytest.mark.parametrize("kind", ["a file", "a newline", "a backslash", "unwritable"])
def test_unusable_home(flow_home, tmp_path, kind):
    if kind == "a file":
        home_path = tmp_path / "file"
        home_path.write_text("not a directory")
    elif kind == "unwritable":
        home_path = Path("/proc/gw-home")
    else:
        home_path = tmp_path / ("a\nb" if kind == "a newline" else "a\\b")
    proc = run_gw("job", "list", env={**flow_home, "GW_HOME": str(home_path)}, check=False)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "GW_HOME" in proc.stderr


def test_time_beyond_the_partition_and_absurd_times(home):
    refused(home, "job", "submit", "--algo", "good", "--image", "bb:v1", "--partition",
            "short", "--time", "2:00:00", "--", "true", message="allows at most 0-00:30:00")
    refused(home, "job", "submit", "--algo", "good", "--image", "bb:v1",
            "--time", "69444-00:00:00", "--", "true", message="more than a year")


@pytest.mark.parametrize("mem, message", [("1K", "whole MiB"), ("8M", "at least 16M")])
def test_memory_below_a_sensible_minimum(home, mem, message):
    refused(home, "job", "submit", "--algo", "good", "--image", "bb:v1", "--mem", mem,
            "--", "true", message=message)


def test_directory_whose_symlink_chain_leads_outside(home, tmp_path):
    src = tmp_path / "chain"
    (src / "sub").mkdir(parents=True)
    (tmp_path / "outside.txt").write_text("secret")
    (src / "sub" / "c").symlink_to("../../outside.txt")  # the last link leaves
    (src / "b").symlink_to("sub/c")
    (src / "a").symlink_to("b")
    refused(home, "algo", "push", str(src), "--name", "chain", message="leads outside")


def test_upload_beyond_the_size_limit_and_a_zip_bomb(home, tmp_path):
    config = tmp_path / "limits.toml"
    config.write_text("max_upload_bytes = 1000000\n")
    big = tmp_path / "big"
    big.mkdir()
    (big / "blob").write_bytes(os.urandom(1_500_000))
    refused(home, "data", "push", str(big), "--name", "big", message="upload limit",
            extra_env={"GW_USER_CONFIG": str(config)})
    bomb = zip_of(tmp_path / "bomb.zip", {"zeros.bin": bytes(200 << 20)})
    assert bomb.stat().st_size < 1 << 20  # 200 MB of zeros in well under 1 MB
    refused(home, "data", "push", str(bomb), "--name", "bomb", message="zip bomb")


def test_model_with_fifo_and_links_outside_keeps_only_its_files(home, tmp_path):
    script = ("mkfifo /model/pipe && ln -s /etc/shadow /model/shadow && "
              "ln -s ../../../../etc/passwd /model/up && ln -s w /model/inside && "
              "echo weights > /model/w")
    job = json.loads(gw_ok(home, "job", "submit", "--json", "--wait", "--algo", "good",
                           "--image", "bb:v1", "--mem", "64M", "--model-name", "hostile",
                           "--", "sh", "-c", script))
    assert job["state"] == "COMPLETED" and job["model"], job
    assert "pipe (FIFO)" in job["reason"] and "shadow" in job["reason"], job["reason"]
    files = {f["path"] for f in json.loads(gw_ok(home, "model", "files", job["model"],
                                                "--json"))}
    assert files == {"w", "inside"}
    out = tmp_path / "m.tar.gz"
    gw_ok(home, "model", "download", job["model"], "-o", str(out))
    import tarfile

    with tarfile.open(out) as tar:
        names = {m.name.split("/", 1)[-1] for m in tar.getmembers() if "/" in m.name}
        assert names == {"w", "inside"}
        assert all(m.isfile() or m.isdir() or m.issym() for m in tar.getmembers())
    proc = run_gw("model", "cat", job["model"], "shadow", env=home, check=False)
    assert proc.returncode == 2


def test_image_writing_through_its_own_symlink_writes_nothing_anywhere(home, tmp_path):
    import tarfile

    from tests.unit.test_archive import archive_of, entry, tar_bytes

    outside = tmp_path / "outside"
    outside.mkdir()
    layer = tar_bytes([entry("escape", tarfile.SYMTYPE, str(outside)),
                       entry("escape/pwned", data=b"gotcha")])
    (tmp_path / "img").mkdir()
    archive = archive_of(tmp_path / "img", [layer])
    refused(home, "image", "import", str(archive), "--name", "evil:v1", "-q",
            message="'escape/pwned' is written through the symlink 'escape'")
    assert list(outside.iterdir()) == []


def test_setid_bits_of_an_image_never_reach_a_job(home, tmp_path):
    from tests.support.images import busybox_rootfs, make_archive

    rootfs = busybox_rootfs(tmp_path / "rootfs")
    (rootfs / "bin" / "suid").write_text("#!/bin/sh\n")
    os.chmod(rootfs / "bin" / "suid", 0o4755)
    (rootfs / "srv").mkdir()
    os.chmod(rootfs / "srv", 0o2775)
    archive = make_archive(tmp_path / "setid.tar", [rootfs], env={"PATH": "/bin"},
                           workdir="/", cmd=["sh"])
    gw_ok(home, "image", "import", str(archive), "--name", "setid:v1", "-q")
    job = json.loads(gw_ok(home, "job", "submit", "--algo", "good", "--image", "setid:v1",
                           "--mem", "256M", "--wait", "--json", "--", "stat", "-c", "%a %n",
                           "/bin/suid", "/srv"))
    assert job["state"] == "COMPLETED", job
    log = gw_ok(home, "job", "logs", str(job["id"]))
    assert "755 /bin/suid" in log and "775 /srv" in log, log
