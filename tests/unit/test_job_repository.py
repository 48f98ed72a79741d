"""The job repository: compare-and-set transitions, ids never reused, races."""

import threading

import pytest

from gateway.jobs.model import TERMINAL
from tests.support.fakes import add_job


def test_transition_is_compare_and_set(gw):
    a = add_job(gw, state="RUNNING")
    assert gw.jobs.transition(a, ["RUNNING"], "COMPLETED", reason="", exit_code=0)
    # a late poll that still thinks the job runs: no effect
    assert not gw.jobs.transition(a, ["RUNNING", "PENDING"], "RUNNING", node="late")
    assert not gw.jobs.transition(a, ["RUNNING"], "FAILED", reason="late")
    job = gw.jobs.get(a)
    assert job.state == "COMPLETED" and job.node == "" and job.exit_code == 0
    assert not gw.jobs.note(a, reason="late note")  # facts of a finished job stay
    assert gw.jobs.get(a).reason == ""


@pytest.mark.parametrize("final", TERMINAL)
def test_a_finished_state_can_never_be_the_start_of_a_transition(gw, final):
    a = add_job(gw)
    assert gw.jobs.transition(a, ["RUNNING"], final)
    with pytest.raises(ValueError):
        gw.jobs.transition(a, [final], "RUNNING")
    assert gw.jobs.get(a).state == final


def test_two_writers_at_once_exactly_one_wins(gw, gw_env):
    from gateway.context import Gateway

    ids = [add_job(gw) for _ in range(20)]
    wins: list[tuple[str, int]] = []
    lock = threading.Lock()

    def finisher(state: str) -> None:
        other = Gateway()
        for job_id in ids:
            if other.jobs.transition(job_id, ["RUNNING"], state):
                with lock:
                    wins.append((state, job_id))

    threads = [threading.Thread(target=finisher, args=(s,)) for s in ("COMPLETED", "FAILED")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(job_id for _, job_id in wins) == ids  # each job finished exactly once
    for state, job_id in wins:
        assert gw.jobs.get(job_id).state == state


def test_slurm_id_attached_once(gw):
    a = add_job(gw, slurm_id=None, state="SUBMITTING")
    assert gw.jobs.attach_slurm_id(a, "10")
    assert not gw.jobs.attach_slurm_id(a, "11")
    assert gw.jobs.get(a).slurm_job_id == "10"


def test_ids_are_never_reused(gw):
    a = add_job(gw, slurm_id=None, state="SUBMITTING")
    assert gw.jobs.discard_unsubmitted(a)
    b = add_job(gw)
    assert b == a + 1
    assert not gw.jobs.discard_unsubmitted(b)  # only a record Slurm never saw goes


def test_huge_or_negative_ids_are_not_found(gw):
    from gateway.common.errors import NotFound

    for bad in (0, -1, 2**63, 10**30):
        assert gw.jobs.find(bad) is None
        with pytest.raises(NotFound):
            gw.jobs.get(bad)
