"""The one end decision (gateway/jobs/end.py), table-driven: the same answers for a whole job and
for an array task, from the spool record, Slurm's word and the time alone."""

import pytest

from gateway.jobs.end import (
    ACCOUNTING_GRACE_SECONDS,
    SPOOL_GRACE_SECONDS,
    decide_end,
)
from gateway.slurm.adapter import SlurmJobState
from spool.format import FORMAT, SpoolRecord

NOW = 1_000_000.0


def record(code: int, clean: bool = True, ended: float | None = NOW - 5) -> SpoolRecord:
    return SpoolRecord(format=FORMAT, home_id="h", job_id=1, slurm_job_id="7", exit_code=code,
                       clean=clean, node="n1", started=1, ended=ended)


def said(state: str, end: float | None = NOW - 5, exit_code: int | None = 0) -> SlurmJobState:
    return SlurmJobState("7", state, "n1", exit_code, 1.0, end)


@pytest.mark.parametrize("rec, slurm, asked, state, words", [
    (record(0), None, False, "COMPLETED", ""),
    (record(3), None, False, "FAILED", "exited with code 3"),
    (record(143, clean=True), None, False, None, "accounting is asked"),
    (record(1, clean=False), None, False, None, "accounting is asked"),
    (record(143), said("CANCELLED by 0"), True, "CANCELLED", "Slurm: CANCELLED by 0"),
    (record(137), said("OUT_OF_MEMORY"), True, "OUT_OF_MEMORY", "Slurm: OUT_OF_MEMORY"),
    (record(143), said("TIMEOUT"), True, "TIMEOUT", "Slurm: TIMEOUT"),
    (record(143), said("RUNNING", end=None), True, None, "not recorded the end"),
    (record(143), None, True, None, "not recorded the end"),   # young: accounting may lag
    (record(143, ended=NOW - ACCOUNTING_GRACE_SECONDS - 1), None, True, "FAILED",
     "killed by SIGTERM"),
    (record(1, clean=False, ended=NOW - ACCOUNTING_GRACE_SECONDS - 1), None, True, "FAILED",
     "interrupted before its command returned"),
    (None, None, True, None, "neither in its queue nor in accounting"),
    (None, said("PENDING"), True, None, "still has it PENDING"),
    (None, said("COMPLETED", end=NOW - 1), True, None, "waiting for its spool file"),
    (None, said("COMPLETED", end=NOW - SPOOL_GRACE_SECONDS - 1), True, "FAILED",
     "wrote no end state"),
    (None, said("CANCELLED by 0"), True, "CANCELLED", "Slurm: CANCELLED by 0"),
    (None, said("NODE_FAIL"), True, "NODE_FAIL", "Slurm: NODE_FAIL"),
    (None, said("FAILED", exit_code=137), True, "FAILED", "Slurm: FAILED"),
])
def test_decide_end(rec, slurm, asked, state, words):
    end = decide_end(rec, slurm, NOW, slurm_asked=asked)
    assert end.state == state and words in end.reason, end
    assert end.final == (state is not None)


def test_a_memory_kill_seen_in_the_log_is_out_of_memory():
    end = decide_end(None, said("FAILED", exit_code=137), NOW, memory_killed=True)
    assert end.state == "OUT_OF_MEMORY" and "--mem" in end.reason
