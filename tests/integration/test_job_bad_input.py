"""Bad input to the job commands: one line on stderr, exit 2, nothing new in the home."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_gw
from tests.integration.conftest import gw_ok


def home_files(env) -> list[str]:
    root = Path(env["GW_HOME"])
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if not p.name.startswith("gateway.db"))


@pytest.fixture(scope="module")
def one_job(flow_home, tmp_path_factory):
    """A home with one finished job (the job's id is returned)."""
    from tests.support.images import busybox_rootfs, make_archive

    base = tmp_path_factory.mktemp("badjob")
    archive = make_archive(base / "bb.tar", [busybox_rootfs(base / "rootfs")],
                           env={"PATH": "/bin"}, workdir="/", cmd=["sh"])
    gw_ok(flow_home, "image", "import", str(archive), "--name", "bb:v1", "-q")
    (base / "algo").mkdir()
    (base / "algo" / "run.sh").write_text("echo out > result.txt\n")
    gw_ok(flow_home, "algo", "push", str(base / "algo"), "--name", "bad", "-q")
    job = json.loads(gw_ok(flow_home, "job", "submit", "--json", "--wait", "--algo", "bad",
                           "--image", "bb:v1", "--mem", "64M", "--", "sh", "run.sh"))
    assert job["state"] == "COMPLETED"
    return {"env": flow_home, "id": str(job["id"]), "base": base}


@pytest.mark.parametrize("args, message", [
    (["job", "show", "99999999999999999999999"], "not in the range"),
    (["job", "show", "-3"], "No such option"),
    (["job", "show", "three"], "not a valid integer"),
    (["job", "cancel", "9223372036854775808"], "not in the range"),
    (["job", "show", "424242"], "no job 424242"),
    (["job", "list", "--state", "DONEISH"], "DONEISH"),
    (["job", "list", "--limit", "0"], "--limit"),
    (["job", "list", "--limit", "-5"], "--limit"),
])
def test_bad_job_arguments(one_job, args, message):
    env = one_job["env"]
    before = home_files(env)
    proc = run_gw(*args, env=env, check=False)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr
    assert home_files(env) == before


def test_outputs_to_an_existing_directory_or_missing_parent(one_job, tmp_path):
    env = one_job["env"]
    before = home_files(env)
    for target, message in ((tmp_path, "is a directory"),
                            (tmp_path / "missing" / "out.tar.gz", "does not exist")):
        proc = run_gw("job", "outputs", one_job["id"], "-o", str(target), env=env, check=False)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
    assert home_files(env) == before
    gw_ok(env, "job", "outputs", one_job["id"], "-o", str(tmp_path / "ok.tar.gz"))
    assert (tmp_path / "ok.tar.gz").stat().st_size > 0


def test_cancel_of_a_finished_job(one_job):
    proc = run_gw("job", "cancel", one_job["id"], env=one_job["env"], check=False)
    assert proc.returncode == 2 and "already COMPLETED" in proc.stderr
