"""Resumable jobs (--restarts): their options, what refuses them, their attempts file."""

import time
from pathlib import Path

import pytest

from gateway.common.errors import InvalidInput
from gateway.common.specs import Resources, parse_resources
from gateway.jobs.attempts import read_attempts

DEFAULTS = {"cpus": 1, "gpus": 0, "mem": "1G", "shm": "64M", "time": "1:00:00",
            "partition": ""}


def _resources(**given) -> Resources:
    base = dict(cpus=None, gpus=None, mem=None, shm=None, time=None, partition=None)
    return parse_resources(**{**base, **given}, defaults=DEFAULTS)


def test_restarts_and_their_options_are_checked():
    resources = _resources(restarts=3, save_seconds=60, restart_on_failure=True)
    assert (resources.restarts, resources.save_seconds, resources.restart_on_failure) == (
        3, 60, True)
    assert resources.as_dict()["restarts"] == 3
    assert _resources().restarts == 0
    for given, words in (({"restarts": -1}, "invalid --restarts -1"),
                         ({"restarts": 101}, "invalid --restarts 101"),
                         ({"restarts": 1, "save_seconds": 5}, "invalid --save-seconds 5"),
                         ({"save_seconds": 60}, "--save-seconds goes with --restarts"),
                         ({"restart_on_failure": True},
                          "--restart-on-failure goes with --restarts")):
        with pytest.raises(InvalidInput, match=words):
            _resources(**given)


def test_the_signal_comes_at_most_half_the_limit_early():
    one_minute = Resources(1, 0, 100, 64, 60, "debug", restarts=3)
    assert one_minute.signal_lead_seconds(90) == 30
    assert Resources(1, 0, 100, 64, 3600, "debug", restarts=1).signal_lead_seconds(90) == 90
    asked = Resources(1, 0, 100, 64, 3600, "debug", restarts=1, save_seconds=300)
    assert asked.signal_lead_seconds(90) == 300


def test_a_flavor_may_make_jobs_resumable():
    from gateway.home.flavors import parse_flavor

    flavor = parse_flavor("preemptible", {"partition": "scavenger", "restarts": 5},
                          "site.toml")
    assert _resources(flavor=flavor).restarts == 5
    assert _resources(flavor=flavor, restarts=0).restarts == 0
    with pytest.raises(InvalidInput, match=r"flavors\.bad: restarts: 0 to 100"):
        parse_flavor("bad", {"restarts": 1000}, "site.toml")


def test_attempts_are_read_back_in_order_with_lost_ones_named(tmp_path: Path):
    (tmp_path / "attempts.jsonl").write_text(
        '{"attempt": 1, "event": "start", "node": "n1", "time": 100}\n'
        '{"attempt": 1, "event": "end", "node": "n1", "time": 160, '
        '"end": "time limit: requeued"}\n'
        '{"attempt": 2, "event": "start", "node": "n2", "time": 200}\n'
        'not json\n{"attempt": "x"}\n'
        '{"attempt": 3, "event": "start", "node": "n1", "time": 300}\n'
        '{"attempt": 3, "event": "end", "node": "n1", "time": 330, "end": "exit 0"}\n'
        '{"attempt": 4, "event": "start", "node": "n1", "time": 4')   # torn: skipped
    attempts = read_attempts(tmp_path)
    assert [(a["attempt"], a["node"], a["started"], a["ended"]) for a in attempts] == [
        (1, "n1", 100, 160), (2, "n2", 200, None), (3, "n1", 300, 330)]
    assert attempts[0]["end"] == "time limit: requeued"
    assert "node was lost" in attempts[1]["end"]
    assert attempts[2]["end"] == "exit 0"
    assert read_attempts(tmp_path / "none") == []


def test_kinds_and_shapes_say_whether_they_resume():
    from gateway.jobs.kinds import get_kind
    from gateway.jobs.shapes import get_shape

    assert get_kind("training").resumes and get_kind("headless").resumes
    assert not get_kind("notebook").resumes and not get_kind("image_build").resumes
    assert get_shape("single").resumes and get_shape("array").resumes
    assert get_shape("gang").resumes
    # a requeued run of a rendered script keeps its Slurm id, and so its directory
    assert get_shape("rendered").resumes and get_shape("rendered_gang").resumes


def _resumable_job(gw, restarts: int, slurm_id: str) -> int:
    from gateway.jobs.model import JobSpec

    gw.layout.ensure()
    spec = JobSpec(command=("sh", "t.sh"), env={}, runtime="bwrap",
                   resources={"cpus": 1, "restarts": restarts}, algo="det@v1",
                   image="img:v1", image_digest="sha256:abc", dataset=None)
    job = gw.jobs.create(kind="training", origin="cli", name="r", spec=spec,
                         model_name="det", jobs_root=gw.layout.jobs, algo_version_id=None,
                         data_version_id=None, image_id=None)
    assert gw.jobs.attach_slurm_id(job.id, slurm_id, "RUNNING")
    job.job_dir.mkdir(parents=True, exist_ok=True)
    return int(job.id)


def test_a_requeued_resumable_job_is_let_start_at_once(gw):
    """Slurm holds a requeued job back two minutes (BeginTime); a sync lifts that for a
    resumable job that has run an attempt, and for nothing else."""
    from spool.reconcile import reconcile
    from tests.support.fakes import FakeScheduler, slurm_state

    requeued = _resumable_job(gw, 2, "100")
    (gw.jobs.get(requeued).job_dir / "attempts.jsonl").write_text(
        '{"attempt": 1, "event": "start", "node": "n1", "time": 1}\n'
        '{"attempt": 1, "event": "end", "node": "n1", "time": 9, '
        '"end": "time limit: requeued"}\n')
    lost = _resumable_job(gw, 2, "103")                 # its node was lost: Slurm's delay
    (gw.jobs.get(lost).job_dir / "attempts.jsonl").write_text(
        '{"attempt": 1, "event": "start", "node": "n1", "time": 1}\n')
    never_ran = _resumable_job(gw, 2, "101")            # waits for a --begin of its own
    just_now = _resumable_job(gw, 2, "104")   # slurmd may not have revoked it yet: wait
    (gw.jobs.get(just_now).job_dir / "attempts.jsonl").write_text(
        '{"attempt": 1, "event": "start", "node": "n1", "time": 1}\n'
        f'{{"attempt": 1, "event": "end", "node": "n1", "time": {int(time.time())}, '
        '"end": "time limit: requeued"}\n')
    plain = _resumable_job(gw, 0, "102")
    (gw.jobs.get(plain).job_dir / "attempts.jsonl").write_text("")
    from dataclasses import replace

    queue = {slurm_id: replace(slurm_state(slurm_id, "PENDING"), reason="BeginTime")
             for slurm_id in ("100", "101", "102", "103", "104")}
    gw.slurm = FakeScheduler(queue=queue)
    reconcile(gw)
    assert [c for c in gw.slurm.calls if isinstance(c, tuple) and c[0] == "start-now"] == [
        ("start-now", "100")]
    assert {gw.jobs.get(i).state for i in (requeued, never_ran, plain)} == {"PENDING"}
