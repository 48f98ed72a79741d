"""What each Slurm release the gateway is tested on really prints, parsed to one meaning.

tests/fixtures/slurm/<release>/ holds the answers of the gateway's own commands
(gateway/slurm/commands.py) about the same jobs, captured on the local cluster of that
release by tests/support/capture_slurm.py: Debian 12's Slurm 22.05 and Debian 13's 24.11
(scripts/slurm-root.sh). Where the releases print differently, gateway/slurm/adapter.py
must still read the same states, exit codes, array tasks, identities and limits.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gateway.jobs.model import state_from_slurm
from gateway.slurm import adapter

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "slurm"
RELEASES = sorted(path.name for path in FIXTURES.iterdir() if path.is_dir())


def test_every_release_the_suite_runs_on_is_captured():
    assert RELEASES == ["22.05", "24.11"]


class Capture:
    """One release's captured answers."""

    def __init__(self, release: str) -> None:
        self.dir = FIXTURES / release
        self.jobs: dict[str, str] = json.loads((self.dir / "jobs.json").read_text())
        self.version = (self.dir / "version.txt").read_text().split()[-1]

    def answer(self, name: str) -> dict[str, Any]:
        return json.loads((self.dir / f"{name}.json").read_text())

    def stdout(self, name: str) -> str:
        answer = self.answer(name)
        assert answer["returncode"] == 0, answer
        return str(answer["stdout"])


@pytest.fixture(params=RELEASES)
def capture(request) -> Capture:
    return Capture(request.param)


def test_the_capture_is_of_its_release(capture):
    assert capture.version.startswith(capture.dir.name + ".")


def test_sbatch_answers_the_job_id(capture):
    assert adapter.parse_sbatch_output(capture.stdout("sbatch")) == capture.jobs["done"]


def test_squeue_gives_states_reasons_and_identities(capture):
    jobs = adapter.parse_squeue(capture.stdout("squeue"))
    mine = {name: jobs[slurm_id] for name, slurm_id in capture.jobs.items()
            if slurm_id in jobs}
    running, held = mine["running"], mine["held"]
    assert state_from_slurm(running.slurm_state) == "RUNNING" and running.node
    assert running.start is not None and running.comment == "gw:capture:running"
    assert state_from_slurm(held.slurm_state) == "PENDING"
    assert held.reason == "JobHeldUser" and held.start is None and held.node == ""
    # an array's tasks are listed as ARRAY_TASK, each known by its array's id
    tasks = adapter.array_tasks(jobs.values())
    array = capture.jobs["array"]
    for index in (0, 1):
        assert f"{array}_{index}" in tasks
        assert tasks[f"{array}_{index}"].base_id == array
        assert tasks[f"{array}_{index}"].comment == "gw:capture:array"
    assert all(state_from_slurm(job.slurm_state) != "UNKNOWN" for job in jobs.values()), \
        {job.slurm_state for job in jobs.values()}


def test_sacct_gives_ends_exit_codes_and_array_tasks(capture):
    jobs = adapter.parse_sacct(capture.stdout("sacct"))
    done, failed = jobs[capture.jobs["done"]], jobs[capture.jobs["failed"]]
    assert (state_from_slurm(done.slurm_state), done.exit_code) == ("COMPLETED", 0)
    assert (state_from_slurm(failed.slurm_state), failed.exit_code) == ("FAILED", 3)
    assert done.start is not None and done.end is not None and done.node
    assert done.comment == "gw:capture:done"
    for name in ("held", "running"):
        assert state_from_slurm(jobs[capture.jobs[name]].slurm_state) == "CANCELLED"
    held = jobs[capture.jobs["held"]]
    assert held.start is None and held.node == ""   # "None assigned"
    array = capture.jobs["array"]
    for source in (jobs, adapter.parse_sacct(capture.stdout("sacct_array"))):
        tasks = adapter.array_tasks(source.values())
        assert {key for key in tasks if key.startswith(f"{array}_")} == {
            f"{array}_0", f"{array}_1"}
        assert all(state_from_slurm(tasks[f"{array}_{i}"].slurm_state) == "COMPLETED"
                   for i in (0, 1))
    # what `gw job top` reads after the end: elapsed and CPU seconds
    usage = adapter.parse_sacct_usage(capture.stdout("sacct_usage"))
    assert usage["elapsed_seconds"] is not None and usage["cpu_seconds"] is not None


def test_sinfo_gives_each_partitions_limits(capture):
    partitions = adapter.parse_sinfo(capture.stdout("sinfo"))
    assert set(partitions) == {"debug", "short", "scavenger", "urgent"}
    debug, short = partitions["debug"], partitions["short"]
    assert debug.default and not short.default and debug.available
    assert debug.max_time_seconds is None and short.max_time_seconds == 30 * 60
    assert debug.cpus >= 1 and debug.mem_mib > 0 and debug.gpus == 0 and debug.nodes == 1
    free = adapter.parse_nodes_free(capture.stdout("sinfo_nodes"))
    assert {node.partition for node in free} == set(partitions)
    assert all(node.idle_cpus >= 0 and node.free_mem_mib > 0 for node in free)


def test_sbatch_test_only_gives_the_estimate(capture):
    answer = capture.answer("sbatch_test_only")
    said = adapter.parse_test_only(answer["stderr"] + answer["stdout"])
    assert said is not None and said["partition"] == "debug" and said["nodes"], said
