"""Spool files the watcher cannot read, beside real jobs, as a fault on shared storage or
a hostile neighbour job writing into the spool would leave them: one cut short, one that
is not UTF-8 text, one far too large. The watcher must stay near idle, name each bad
file once, and harvest the real jobs; read commands and `gw doctor` must answer."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.conftest import run_gw
from tests.integration.conftest import gw_ok
from tests.integration.test_watcher import (  # noqa: F401 - home is a fixture
    home,
    start_watcher,
    stop_watcher,
    submit,
    wait_harvested,
)

BAD_FILES = {
    "9001.json": b'{"format": 3, "home_id": "x", "job_id": 9001, "exit_code": ',
    "9002.json": bytes(range(256)) * 16,
    "9003.json": b'{"format": 3, "pad": "' + b"x" * (1 << 20) + b'"}',
}


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.parametrize("mode", [[], ["--poll", "1"]], ids=["inotify", "polling"])
def test_bad_spool_files_beside_real_jobs(home, mode):  # noqa: F811
    spool = Path(home["GW_HOME"]) / "spool"
    watcher = start_watcher(home, *mode)
    try:
        for name, content in BAD_FILES.items():
            (spool / name).write_bytes(content)      # written in place, no rename
        jobs = [submit(home, f"real{i}") for i in range(2)]
        for job_id in jobs:
            assert wait_harvested(home, job_id, timeout=90) == "COMPLETED"
        # Near idle with the kept file still there: over 10 s, a spinning watcher used a
        # whole CPU (and logged thousands of lines).
        before = cpu_seconds(watcher.pid)
        time.sleep(10)
        used = cpu_seconds(watcher.pid) - before
        assert used < 0.5, f"the watcher used {used:.2f} s of CPU in 10 s"
        assert (spool / "9001.json").exists()                      # kept for a retry
        assert (spool / "aside" / "9002.json").exists()            # never a record
        assert (spool / "aside" / "9003.json").exists()
        for args in (["job", "list"], ["job", "list", "--json"], ["spool", "sync"],
                     ["doctor"], ["job", "show", str(jobs[0])]):
            proc = run_gw(*args, env=home, check=False)
            assert "Traceback" not in proc.stderr, (args, proc.stderr)
            assert proc.returncode in (0, 1), (args, proc.stderr)
        doctor = run_gw("doctor", env=home, check=False).stdout
        assert "9002.json" in doctor and "9003.json" in doctor and "9001.json" in doctor, doctor
        assert "watcher: running" in doctor
    finally:
        log = stop_watcher(watcher)
    for name in BAD_FILES:
        assert sum(name in line for line in log.splitlines()) == 1, (name, log)
    assert "not UTF-8" in log and "KiB" in log and "kept for a retry" in log, log
    for job_id in jobs:
        assert f"job {job_id} (training) COMPLETED" in log
    assert len(log.splitlines()) < 20, log
    listed = json.loads(gw_ok(home, "job", "list", "--json"))
    assert {j["id"] for j in listed} >= set(jobs)
