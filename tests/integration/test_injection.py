"""Injection: every value a user types reaches the program literally, or is refused.

Values full of shell and Slurm syntax ($(...), backticks, ;, &&, both quotes, newlines,
#SBATCH lines, % patterns, unicode) go into job names, --env values, command arguments,
template --set values and sweep values, through `gw job submit`, `gw template run` and a
script from `gw job render` run with plain sbatch. No command the user did not ask for
ever runs (a marker file is never made) and the program receives the exact bytes. Values
that must be names (models, partitions, accounts, QOS, templates, flavors) are refused
with one line and nothing recorded.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.conftest import run_gw
from tests.integration.conftest import gw_ok, image_and_algo

pytestmark = pytest.mark.container

MARKER = Path(f"/tmp/gw-injected-{uuid.uuid4().hex}")
M = str(MARKER)
VALUES = [
    f"$(touch {M})",
    f"`touch {M}`",
    f"; touch {M}",
    f"&& touch {M} #",
    f"' ; touch {M} ; '",
    f'" ; touch {M} ; "',
    f"line one\n#SBATCH --wrap=\"touch {M}\"\ntouch {M}",
    "%j %x %u %% %A_%a",
    "训练 модель 🚀 ünïcödé",
    "  leading and trailing  ",
    "\\ backslash \\n not a newline",
    f"${{IFS}}touch${{IFS}}{M}",
]
PROBE = ('for a in "$@"; do printf "%s|END|" "$a"; done > /model/args\n'
         'printf "%s" "$MSG" > /model/env\nprintf "%s" "$GW_JOB_NAME" > /model/name\n')


@pytest.fixture(scope="module")
def home(flow_home, busybox_archive, tmp_path_factory):
    base = tmp_path_factory.mktemp("inject")
    env = {**flow_home, "GW_HOME": str(base / "home")}
    yield image_and_algo(env, busybox_archive, base, "probe", {"probe.sh": PROBE})
    assert not MARKER.exists(), "an injected command ran"


def finished(env, job_id: int) -> dict:
    deadline = time.time() + 180
    while time.time() < deadline:
        job = json.loads(gw_ok(env, "job", "show", str(job_id), "--json"))
        if job["state"] not in ("SUBMITTING", "PENDING", "RUNNING", "UNKNOWN"):
            return job
        time.sleep(1)
    raise AssertionError(job)


def received(env, ref: str) -> tuple[str, str, str]:
    return (gw_ok(env, "model", "cat", ref, "args"), gw_ok(env, "model", "cat", ref, "env"),
            gw_ok(env, "model", "cat", ref, "name"))


def one_line(value: str) -> str:
    """``value`` as a job name may be: names are one line of at most 200 characters (a
    control character in one is refused: tests/integration/test_job_bad_input.py); every
    other byte stays."""
    return value.replace("\n", " ")[:200]


def test_submit_passes_every_value_literally(home):
    ids = []
    for value in VALUES:
        ids.append(json.loads(gw_ok(home, "job", "submit", "--json", "--algo", "probe",
                                    "--image", "bb:v1", "--mem", "64M", "--name",
                                    one_line(value),
                                    "--env", f"MSG={value}", "--", "sh", "probe.sh", value,
                                    "x"))["id"])
    for value, job_id in zip(VALUES, ids, strict=True):
        job = finished(home, job_id)
        assert job["state"] == "COMPLETED", (value, job)
        assert job["name"] == one_line(value)
        assert received(home, job["model"]) == (f"{value}|END|x|END|", value,
                                                one_line(value))
    assert not MARKER.exists()


def test_template_set_and_sweep_values_are_literal(home):
    gw_ok(home, "template", "save", "inj", "--algo", "probe", "--image", "bb:v1", "--mem",
          "64M", "--model-name", "inj", "--", "sh", "probe.sh", "{{ v }}", "pre-{{ w }}")
    run = json.loads(gw_ok(home, "template", "run", "inj", "--set", f"v={VALUES[0]}",
                           "--set", f"w={VALUES[6]}", "--env", f"MSG={VALUES[4]}", "--json"))
    job = finished(home, run["id"])
    assert received(home, job["model"])[:2] == (
        f"{VALUES[0]}|END|pre-{VALUES[6]}|END|", VALUES[4])
    # Sweep values are split on commas only; each is passed as typed.
    sweep_values = [v for v in VALUES if "," not in v and "\n" not in v][:5]
    run = json.loads(gw_ok(home, "template", "run", "inj", "--set", "w=1", "--sweep",
                           "v=" + ",".join(sweep_values), "--json"))
    job = finished(home, run["id"])
    assert job["state"] == "COMPLETED", job
    for task, value in zip(job["tasks"], sweep_values, strict=True):
        assert task["params"] == {"v": value}
        assert gw_ok(home, "model", "cat", task["model"], "args") == f"{value}|END|pre-1|END|"
    assert not MARKER.exists()


def test_a_rendered_script_keeps_values_literal_under_plain_sbatch(home, tmp_path):
    value = VALUES[6] + VALUES[0] + VALUES[7]
    script = tmp_path / "inj.sbatch"
    gw_ok(home, "job", "render", "--algo", "probe", "--image", "bb:v1", "--mem", "64M",
          "--model-name", "inj-render", "--name", one_line(value), "--env", f"MSG={value}", "-o",
          str(script), "--", "sh", "probe.sh", value)
    # sbatch reads #SBATCH lines only until the first line that is not a comment or blank
    # (a value with a newline may put "#SBATCH" at the start of a line further down,
    # inside a quoted argument, where bash and sbatch both leave it alone).
    directives = []
    for line in script.read_text().splitlines()[1:]:
        if line.strip() and not line.startswith("#"):
            break
        if line.startswith("#SBATCH"):
            directives.append(line)
    # The value stays inside its own directive (sanitised for Slurm's job name); no line
    # of its own, so no --wrap or any other option, comes from it.
    assert not any(line.startswith("#SBATCH --wrap") for line in directives), directives
    assert sum(1 for line in directives if M.replace("/", "_") in line) == 1
    subprocess.run(["sbatch", str(script)], check=True, capture_output=True, cwd=tmp_path,
                   env={**os.environ, **home})
    deadline = time.time() + 120
    versions: list = []
    while time.time() < deadline and not versions:
        gw_ok(home, "job", "list")
        proc = run_gw("model", "versions", "inj-render", "--json", env=home, check=False)
        versions = json.loads(proc.stdout) if proc.returncode == 0 else []
        time.sleep(1)
    assert versions, "the rendered run was never harvested"
    assert received(home, versions[0]["ref"]) == (f"{value}|END|", value, one_line(value))
    assert not MARKER.exists()


@pytest.mark.parametrize("option", ["--model-name", "--partition", "--account", "--qos",
                                    "--flavor", "--template"])
def test_values_that_must_be_names_are_refused(home, option):
    before = gw_ok(home, "job", "list", "--json")
    for value in VALUES:
        proc = run_gw("job", "submit", "--algo", "probe", "--image", "bb:v1", option, value,
                      "--", "true", env=home, check=False)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1, (option, value, proc.stderr)
    assert gw_ok(home, "job", "list", "--json") == before
    for name in VALUES[:3]:
        proc = run_gw("template", "save", name, "--algo", "probe", "--image", "bb:v1", "--",
                      "true", env=home, check=False)
        assert proc.returncode == 2, proc.stderr
    assert not MARKER.exists()
