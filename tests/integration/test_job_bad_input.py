"""Bad input to the job commands: one line on stderr, exit 2, nothing new in the home."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_gw
from tests.integration.conftest import gw_ok, image_and_algo


def home_files(env) -> list[str]:
    root = Path(env["GW_HOME"])
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if not p.name.startswith("gateway.db"))


@pytest.fixture(scope="module")
def one_job(flow_home, busybox_archive, tmp_path_factory):
    """A home with one finished job (the job's id is returned)."""
    base = tmp_path_factory.mktemp("badjob")
    image_and_algo(flow_home, busybox_archive, base, "bad",
                   {"run.sh": "echo out > result.txt\n"})
    job = json.loads(gw_ok(flow_home, "job", "submit", "--json", "--wait", "--algo", "bad",
                           "--image", "bb:v1", "--mem", "64M", "--", "sh", "run.sh"))
    assert job["state"] == "COMPLETED"
    return {"env": flow_home, "id": str(job["id"]), "base": base,
            "archive": str(busybox_archive)}


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


# Every name option of every command, with a control character in the name: one line,
# exit 2, nothing recorded (the one rule for names: gateway/common/specs.py).
CONTROL_CHARACTERS = ["\n", "\t", "\x1b", "\x7f", "\x85", "\u2028"]
NAME_OPTIONS = [
    ("job submit --name", ["job", "submit", "--algo", "bad", "--image", "bb:v1", "--mem", "64M",
                           "--name", "{x}", "--", "true"]),
    ("job submit --test-only --name", ["job", "submit", "--test-only", "--algo", "bad",
                                       "--image", "bb:v1", "--name", "{x}", "--", "true"]),
    ("job submit --model-name", ["job", "submit", "--algo", "bad", "--image", "bb:v1",
                                 "--model-name", "{x}", "--", "true"]),
    ("job submit --flavor", ["job", "submit", "--algo", "bad", "--image", "bb:v1",
                             "--flavor", "{x}", "--", "true"]),
    ("job submit --template", ["job", "submit", "--algo", "bad", "--image", "bb:v1",
                               "--template", "{x}", "--", "true"]),
    ("job submit --image", ["job", "submit", "--algo", "bad", "--image", "bb{x}:v1", "--",
                            "true"]),
    ("job submit --image tag", ["job", "submit", "--algo", "bad", "--image", "bb:v{x}1", "--",
                                "true"]),
    ("job submit --algo", ["job", "submit", "--algo", "ba{x}d", "--image", "bb:v1", "--",
                           "true"]),
    ("job submit --data", ["job", "submit", "--algo", "bad", "--data", "d{x}", "--image",
                           "bb:v1", "--", "true"]),
    ("job render --name", ["job", "render", "--algo", "bad", "--image", "bb:v1", "--name",
                           "{x}", "-o", "{out}", "--", "true"]),
    ("job rerun --name", ["job", "rerun", "{job}", "--name", "{x}"]),
    ("notebook start --name", ["notebook", "start", "--image", "bb:v1", "--algo", "bad",
                               "--name", "{x}"]),
    ("template save NAME", ["template", "save", "t{x}", "--algo", "bad", "--image", "bb:v1",
                            "--", "true"]),
    ("template save --name", ["template", "save", "tname", "--algo", "bad", "--image",
                              "bb:v1", "--name", "{x}", "--", "true"]),
    ("template save --model-name", ["template", "save", "tmodel", "--algo", "bad", "--image",
                                    "bb:v1", "--model-name", "{x}", "--", "true"]),
    ("template run --name", ["template", "run", "names-tpl", "--name", "{x}"]),
    ("template run NAME", ["template", "run", "names{x}tpl"]),
    ("template import --name", ["template", "import", "{j2}", "--name", "s{x}"]),
    ("algo push --name", ["algo", "push", "{dir}", "--name", "a{x}"]),
    ("data push --name", ["data", "push", "{dir}", "--name", "d{x}"]),
    ("image import --name", ["image", "import", "{archive}", "--name", "i{x}:v1"]),
    ("image import --name tag", ["image", "import", "{archive}", "--name", "i:v{x}"]),
    ("model versions NAME", ["model", "versions", "m{x}"]),
    ("algo versions NAME", ["algo", "versions", "bad{x}"]),
]


@pytest.fixture(scope="module")
def names_home(one_job):
    env = one_job["env"]
    base = one_job["base"]
    gw_ok(env, "template", "save", "names-tpl", "--algo", "bad", "--image", "bb:v1", "--mem",
          "64M", "--", "true")
    (base / "push").mkdir()
    (base / "push" / "f.txt").write_text("x\n")
    (base / "t.j2").write_text('{% extends "sbatch/training.sh.j2" %}\n')
    return one_job


def home_state(env) -> tuple[list[str], list[str]]:
    """The home's files and every row of its database."""
    import sqlite3

    conn = sqlite3.connect(Path(env["GW_HOME"]) / "gateway.db")
    try:
        rows = list(conn.iterdump())
    finally:
        conn.close()
    return home_files(env), rows


@pytest.mark.parametrize("char", CONTROL_CHARACTERS, ids=lambda c: f"U+{ord(c):04X}")
@pytest.mark.parametrize("label, args", NAME_OPTIONS, ids=[n for n, _ in NAME_OPTIONS])
def test_a_control_character_in_any_name_is_refused(names_home, tmp_path, label, args, char):
    env = names_home["env"]
    values = {"x": f"x{char}y", "job": names_home["id"], "out": str(tmp_path / "r.sbatch"),
              "j2": str(names_home["base"] / "t.j2"), "dir": str(names_home["base"] / "push"),
              "archive": names_home["archive"]}
    argv = [a.replace("{x}", values["x"]) if "{x}" in a else a.format(**values)
            if a.startswith("{") else a for a in args]
    before = home_state(env)
    proc = run_gw(*argv, env=env, check=False)
    assert proc.returncode == 2, (label, proc.returncode, proc.stdout, proc.stderr)
    assert len(proc.stderr.strip().splitlines()) == 1, (label, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert home_state(env) == before, label
    assert not (tmp_path / "r.sbatch").exists()
