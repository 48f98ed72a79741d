"""A home written by the release before jobs had shapes moves to the current schema with
nothing lost, and every job in it still shows, prints its logs and reruns.

The home (tests/fixtures/schema3-home.tar.gz, made by tests/fixtures/make_schema3_home.py
with that release on the real cluster) holds a sweep (then its own kind), a notebook, a
headless job, a run of a rendered script and a training job.
"""

from __future__ import annotations

import json
import sqlite3
import tarfile
from pathlib import Path

import pytest

from tests.conftest import run_gw
from tests.integration.conftest import gw_ok

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "schema3-home.tar.gz"
# (kind, shape, text in its log) of each job of the fixture, by id.
EXPECTED = {1: ("training", "array", "run a"), 2: ("headless", "single", "Executing notebook"),
            3: ("training", "single", "run plain"), 4: ("notebook", "single", "stand-in jupyter"),
            5: ("training", "rendered", "run rendered")}


@pytest.fixture(scope="module")
def old_home(tmp_path_factory, cluster_env) -> dict[str, str]:
    root = tmp_path_factory.mktemp("schema3")
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(root, filter="tar")
    home = root / "home"
    dump = (root / "gateway.sql").read_text().replace("@HOME@", str(home))
    conn = sqlite3.connect(home / "gateway.db")
    conn.executescript(dump)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
    conn.close()
    return {"GW_HOME": str(home), "GW_SITE_CONFIG": str(root / "none.toml"),
            "GW_USER_CONFIG": str(root / "none-user.toml"), **cluster_env}


def test_every_job_is_there_with_its_kind_and_shape(old_home):
    listed = {j["id"]: j for j in json.loads(gw_ok(old_home, "job", "list", "--json"))}
    assert sorted(listed) == sorted(EXPECTED)
    for job_id, (kind, shape, _text) in EXPECTED.items():
        shown = json.loads(gw_ok(old_home, "job", "show", str(job_id), "--json"))
        assert (shown["kind"], shown["shape"], shown["state"]) == (kind, shape, "COMPLETED")
        assert listed[job_id]["state"] == "COMPLETED"
    sweep = json.loads(gw_ok(old_home, "job", "show", "1", "--json"))
    assert sweep["task_count"] == 2 and sweep["task_states"] == {"COMPLETED": 2}
    assert [t["model"] for t in sweep["tasks"]] == ["mig@v1", "mig@v2"]
    assert [t["params"] for t in sweep["tasks"]] == [{"x": "a"}, {"x": "b"}]


def test_every_job_prints_its_logs(old_home):
    for job_id, (_kind, _shape, text) in EXPECTED.items():
        assert text in gw_ok(old_home, "job", "logs", str(job_id)), job_id
    assert "run b" in gw_ok(old_home, "job", "logs", "1", "--task", "1")
    refused = run_gw("job", "logs", "3", "--task", "1", env=old_home, check=False)
    assert refused.returncode == 2 and "not a sweep" in refused.stderr


@pytest.mark.parametrize("job_id", [1, 2, 3, 5])
def test_every_batch_job_reruns(old_home, job_id):
    kind, shape, _text = EXPECTED[job_id]
    rerun = json.loads(gw_ok(old_home, "job", "rerun", str(job_id), "--wait", "--json"))
    assert rerun["state"] == "COMPLETED" and rerun["rerun_of"] == job_id, rerun
    assert rerun["kind"] == kind and rerun["shape"] == ("single" if shape == "rendered"
                                                        else shape)
    if shape == "array":
        assert rerun["task_states"] == {"COMPLETED": 2}


def test_the_notebook_reruns_as_a_notebook_with_a_new_token(old_home):
    old = json.loads(gw_ok(old_home, "notebook", "show", "4", "--json"))
    rerun = json.loads(gw_ok(old_home, "job", "rerun", "4", "--json"))
    assert rerun["kind"] == "notebook" and rerun["rerun_of"] == 4
    again = json.loads(gw_ok(old_home, "notebook", "show", str(rerun["id"]), "--json"))
    assert again["token"] and again["token"] != old["token"]
    gw_ok(old_home, "notebook", "stop", str(rerun["id"]), "--wait")
    stopped = json.loads(gw_ok(old_home, "job", "show", str(rerun["id"]), "--json"))
    assert stopped["state"] not in ("PENDING", "RUNNING", "SUBMITTING")
