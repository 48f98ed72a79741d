"""Resource flavors, the options HPC users expect, checks against the real partitions, and
`--test-only`, on the real local Slurm (partitions debug and short; 2 CPUs, no GPUs)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.conftest import run_gw
from tests.integration.conftest import gw_ok, image_and_algo

pytestmark = pytest.mark.container

SITE = """
[flavors.small]
cpus = 1
mem = "64M"
partition = "short"
time = "10:00"
qos = "normal"

[flavors.whole]
cpus = 2
mem = "128M"
exclusive = true

[flavors.huge]
cpus = 64
gpus = "a100:8"
mem = "512G"
"""


@pytest.fixture(scope="module")
def home(flow_home, busybox_archive, tmp_path_factory):
    base = tmp_path_factory.mktemp("flavors")
    (base / "site.toml").write_text(SITE)
    env = {**flow_home, "GW_HOME": str(base / "home"), "GW_SITE_CONFIG": str(base / "site.toml")}
    return image_and_algo(env, busybox_archive, base, "fl", {"t.sh": 'echo "$1" > /model/out\n'})


def wait_done(env, job_id: int) -> dict:
    deadline = time.time() + 120
    while time.time() < deadline:
        job = json.loads(gw_ok(env, "job", "show", str(job_id), "--json"))
        if job["state"] not in ("SUBMITTING", "PENDING", "RUNNING", "UNKNOWN"):
            return job
        time.sleep(1)
    raise AssertionError(job)


def home_state(env) -> tuple:
    root = Path(env["GW_HOME"])
    return (gw_ok(env, "job", "list", "--json"),
            sorted(p.name for p in (root / "jobs").iterdir()),
            sorted(p.name for p in (root / "tmp").iterdir()))


def test_flavors_list_what_the_cluster_can_give_now(home):
    shown = {f["name"]: f for f in json.loads(gw_ok(home, "flavors", "--json"))}
    assert set(shown) == {"small", "whole", "huge"}
    assert shown["small"]["partition"] == "short" and shown["small"]["fits_now"] >= 1
    assert shown["huge"]["fits_now"] == 0 and shown["huge"]["gpus"] == "a100:8"
    assert shown["whole"]["exclusive"] is True
    assert "small" in gw_ok(home, "flavors")


def test_flavor_used_and_overridden_reaches_the_script(home):
    run = json.loads(gw_ok(home, "job", "submit", "--json", "--algo", "fl", "--image",
                           "bb:v1", "--flavor", "small", "--mem", "96M", "--account", "root",
                           "--", "sh", "t.sh", "flavored"))
    script = gw_ok(home, "job", "script", str(run["id"]))
    for line in ("#SBATCH --partition=short", "#SBATCH --time=0-00:10:00",
                 "#SBATCH --mem=160M", "#SBATCH --qos=normal", "#SBATCH --account=root",
                 "#SBATCH --cpus-per-task=1"):
        assert line in script, line
    job = wait_done(home, run["id"])
    assert job["state"] == "COMPLETED", job
    assert job["resources"]["flavor"] == "small" and job["resources"]["mem"] == "96M"
    assert gw_ok(home, "model", "cat", job["model"], "out") == "flavored\n"
    # The exclusive flavor, and a rerun that keeps every option.
    whole = json.loads(gw_ok(home, "job", "submit", "--json", "--algo", "fl", "--image",
                             "bb:v1", "--flavor", "whole", "--", "sh", "t.sh", "whole"))
    assert "#SBATCH --exclusive" in gw_ok(home, "job", "script", str(whole["id"]))
    assert wait_done(home, whole["id"])["state"] == "COMPLETED"
    again = json.loads(gw_ok(home, "job", "rerun", str(run["id"]), "--json"))
    assert gw_ok(home, "job", "script", str(again["id"])).count("#SBATCH --qos=normal") == 1
    assert wait_done(home, again["id"])["resources"] == job["resources"]


def test_impossible_requests_are_refused_before_sbatch(home):
    before = home_state(home)
    for args, words in (
            (["--gpus", "a100:1"], "--gpus asks for 1 GPU but the largest node of partition"),
            (["--constraint", "a100&ib"], "has the feature 'a100'"),
            (["--cpus", "3"], "--cpus asks for 3 CPUs but the largest node"),
            (["--flavor", "huge"], "--cpus asks for 64"),
            (["--flavor", "nosuch"], "no flavor 'nosuch'; flavors: huge, small, whole"),
            (["--partition", "short", "--time", "2:00:00"], "allows at most"),
            (["--gpus", "two"], "invalid --gpus"),
            (["--account", "a b"], "invalid --account"),
            (["--constraint", "x;rm -rf"], "invalid --constraint")):
        proc = run_gw("job", "submit", "--algo", "fl", "--image", "bb:v1", *args, "--",
                      "true", env=home, check=False)
        assert proc.returncode == 2, (args, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0], (args, lines)
    assert home_state(home) == before


def test_test_only_gives_slurms_estimate_and_records_nothing(home):
    before = home_state(home)
    said = json.loads(gw_ok(home, "job", "submit", "--test-only", "--json", "--algo", "fl",
                            "--image", "bb:v1", "--flavor", "small", "--", "sh", "t.sh",
                            "x"))
    assert said["partition"] == "short" and said["nodes"] and said["start"][:4].isdigit()
    text = gw_ok(home, "job", "submit", "--test-only", "--algo", "fl", "--image", "bb:v1",
                 "--mem", "64M", "--", "true")
    assert "Slurm would start it at" in text and "nothing was submitted" in text
    assert home_state(home) == before


def test_a_bad_flavor_in_the_site_file_is_named(home, tmp_path):
    (tmp_path / "bad.toml").write_text('[flavors.oops]\ncpus = "many"\n')
    proc = run_gw("flavors", env={**home, "GW_SITE_CONFIG": str(tmp_path / "bad.toml")},
                  check=False)
    assert proc.returncode == 2 and "flavors.oops.cpus" in proc.stderr
    assert str(tmp_path / "bad.toml") in proc.stderr
