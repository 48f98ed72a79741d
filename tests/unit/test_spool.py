"""Ingest, harvest and reconciliation against a fake scheduler (the real one is in
tests/integration): exact situations, including races and faults."""

import json
import subprocess
import threading
import time

import pytest

from gateway.common.errors import SlurmUnavailable
from spool.format import (
    FORMAT,
    SpoolFormatError,
    SpoolRecord,
    parse_record,
    shell_writer,
    write_record,
)
from spool.harvest import incoming_dir
from spool.ingest import ingest_spool
from spool.layout import pending_spool_files
from spool.reconcile import reconcile
from spool.sync import sync_state
from tests.support.fakes import FakeScheduler, add_job, slurm_state


def end(gw, job_id, code, slurm_id="100", clean=True, home_id=None):
    write_record(gw.layout.spool, SpoolRecord(
        format=FORMAT, home_id=home_id if home_id is not None else gw.home_id, job_id=job_id,
        slurm_job_id=slurm_id, exit_code=code, clean=clean, node="n1", started=1,
        ended=int(time.time())))


def test_success_harvests_versions_with_lineage(gw):
    gw.slurm = FakeScheduler()
    a = add_job(gw, model_files={"w.txt": "weights-1"})
    b = add_job(gw, model_files={"w.txt": "weights-2"}, slurm_id="101")
    end(gw, a, 0)
    end(gw, b, 0, "101")
    assert sorted(ingest_spool(gw).finished) == [a, b]
    versions = gw.store("model").versions("det")
    assert [v.number for v in versions] == [1, 2]
    assert (versions[0].path / "w.txt").read_text() == "weights-1"
    assert versions[1].meta["job_id"] == b and versions[1].meta["algo"] == "det@v1"
    assert versions[1].meta["image_digest"] == "sha256:abc" and versions[1].meta["node"] == "n1"
    assert gw.jobs.get(a).state == "COMPLETED" and gw.jobs.get(a).exit_code == 0
    assert gw.jobs.get(b).model_ref == "det@v2"
    assert not pending_spool_files(gw.layout.spool)
    assert not (versions[0].path.stat().st_mode & 0o222)


def test_failure_makes_no_model(gw):
    gw.slurm = FakeScheduler()
    a = add_job(gw, model_files={"w.txt": "partial"})
    end(gw, a, 3)
    ingest_spool(gw)
    job = gw.jobs.get(a)
    assert job.state == "FAILED" and "exited with code 3" in job.reason
    assert job.model_version_id is None
    assert gw.conn.execute("SELECT COUNT(*) FROM versions").fetchone()[0] == 0


def test_signal_refined_by_sacct(gw):
    gw.slurm = FakeScheduler(accounting={"100": slurm_state("100", "CANCELLED by 0")})
    a = add_job(gw)
    end(gw, a, 143)
    ingest_spool(gw)
    assert gw.jobs.get(a).state == "CANCELLED"
    assert ("sacct", ("100",)) in gw.slurm.calls


def test_unclean_end_waits_for_slurm_while_slurm_still_runs_it(gw):
    """slurmstepd killed: the script ran on and wrote exit 0, but not cleanly. Slurm still
    runs the job, so it stays RUNNING and makes no model until Slurm says how it ended."""
    gw.slurm = FakeScheduler(accounting={"100": slurm_state("100", "RUNNING")})
    a = add_job(gw, model_files={"w": "x"})
    end(gw, a, 0, clean=False)
    report = ingest_spool(gw)
    assert gw.jobs.get(a).state == "RUNNING" and report.retry
    assert pending_spool_files(gw.layout.spool)  # kept for the next pass
    gw.slurm.accounting["100"] = slurm_state("100", "TIMEOUT", end=time.time())
    ingest_spool(gw)
    job = gw.jobs.get(a)
    assert job.state == "TIMEOUT" and job.model_version_id is None
    assert "no model version made" in job.reason


def test_spool_file_of_another_slurm_job_changes_nothing(gw, capsys):
    gw.slurm = FakeScheduler()
    a = add_job(gw, model_files={"w": "x"}, slurm_id="100")
    end(gw, a, 0, slurm_id="999")
    report = ingest_spool(gw)
    assert gw.jobs.get(a).state == "RUNNING" and report.put_aside
    assert (gw.layout.spool / "aside" / f"{a}.json").exists()
    assert "put aside" in capsys.readouterr().err
    assert gw.conn.execute("SELECT COUNT(*) FROM versions").fetchone()[0] == 0


def test_spool_file_of_another_home_changes_nothing(gw):
    gw.slurm = FakeScheduler()
    a = add_job(gw, model_files={"w": "x"})
    end(gw, a, 0, home_id="0123456789abcdef")
    ingest_spool(gw)
    assert gw.jobs.get(a).state == "RUNNING"


def test_submitting_job_adopted_from_its_spool_file(gw):
    gw.slurm = FakeScheduler()
    a = add_job(gw, model_files={"w": "x"}, slurm_id=None, state="SUBMITTING")
    end(gw, a, 0, slurm_id="321")
    ingest_spool(gw)
    job = gw.jobs.get(a)
    assert job.slurm_job_id == "321" and job.state == "COMPLETED" and job.model_ref == "det@v1"


def test_ingest_twice_and_concurrently_is_idempotent(gw, gw_env):
    from gateway.context import Gateway

    gw.slurm = FakeScheduler()
    ids = [add_job(gw, model_files={"w": str(i)}, slurm_id=str(200 + i)) for i in range(6)]
    for i, job_id in enumerate(ids):
        end(gw, job_id, 0, str(200 + i))
    errors = []

    def worker():
        try:
            other = Gateway()
            other.slurm = FakeScheduler()
            ingest_spool(other)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    ingest_spool(gw)
    versions = gw.store("model").versions("det")
    assert [v.number for v in versions] == list(range(1, 7))
    assert sorted(v.job_id for v in versions) == ids


def test_crash_between_record_and_rename_is_finished(gw, monkeypatch):
    from spool import harvest

    gw.slurm = FakeScheduler()
    a = add_job(gw, model_files={"w": "x"})
    real_finish = harvest._finish
    monkeypatch.setattr(harvest, "_finish", lambda *args: (_ for _ in ()).throw(
        RuntimeError("crash")))
    end(gw, a, 0)
    with pytest.raises(RuntimeError):
        ingest_spool(gw)
    monkeypatch.setattr(harvest, "_finish", real_finish)
    assert incoming_dir(gw, "det", a).is_dir() and gw.jobs.get(a).state == "RUNNING"
    ingest_spool(gw)  # the spool file is still there: the run finishes the harvest
    version = gw.store("model").versions("det")[0]
    assert (version.path / "w").read_text() == "x"
    assert not incoming_dir(gw, "det", a).exists()
    assert gw.jobs.get(a).state == "COMPLETED"


def test_transient_error_during_harvest_is_retried_not_lost(gw, monkeypatch):
    from spool import harvest

    gw.slurm = FakeScheduler()
    a = add_job(gw, model_files={"w": "x"})
    b = add_job(gw, model_files={"w": "y"}, slurm_id="101")
    end(gw, a, 0)
    end(gw, b, 0, "101")
    real = harvest.tree_size
    calls = []

    def flaky(root):
        calls.append(root)
        if len(calls) == 1:
            raise OSError(5, "Input/output error")
        return real(root)

    monkeypatch.setattr(harvest, "tree_size", flaky)
    report = ingest_spool(gw)
    assert report.retry and report.finished == [b]  # one bad file blocks nothing else
    assert gw.jobs.get(a).state == "RUNNING"
    assert (gw.layout.spool / f"{a}.json").exists()  # kept, not sent to bad/
    ingest_spool(gw)
    assert gw.jobs.get(a).state == "COMPLETED" and gw.jobs.get(a).model_ref


def test_half_written_spool_file_is_retried(gw):
    gw.slurm = FakeScheduler()
    a = add_job(gw, model_files={"w": "x"})
    path = gw.layout.spool / f"{a}.json"
    path.write_text('{"format": 2, "job_id": ')  # a writer on NFS that has not finished
    report = ingest_spool(gw)
    assert report.retry and path.exists() and gw.jobs.get(a).state == "RUNNING"
    end(gw, a, 0)
    ingest_spool(gw)
    assert gw.jobs.get(a).state == "COMPLETED"


def test_empty_model_makes_no_version(gw):
    gw.slurm = FakeScheduler()
    a = add_job(gw)
    end(gw, a, 0)
    ingest_spool(gw)
    assert gw.jobs.get(a).state == "COMPLETED" and "empty" in gw.jobs.get(a).reason


def test_reconcile_batches_and_maps(gw):
    now = time.time()
    a = add_job(gw, slurm_id="1", state="PENDING")
    b = add_job(gw, slurm_id="2", state="PENDING")
    c = add_job(gw, slurm_id="3", state="RUNNING")
    d = add_job(gw, slurm_id="4", state="RUNNING")
    gw.slurm = FakeScheduler(
        queue={"1": slurm_state("1", "RUNNING", start=now)},
        accounting={"2": slurm_state("2", "CANCELLED by 0"),
                    "3": slurm_state("3", "TIMEOUT", end=now - 5),
                    "4": slurm_state("4", "COMPLETED", end=now - 1)})
    reconcile(gw)
    assert gw.slurm.calls == ["squeue", ("sacct", ("2", "3", "4"))]
    assert gw.jobs.get(a).state == "RUNNING" and gw.jobs.get(a).node == "n1"
    assert gw.jobs.get(b).state == "CANCELLED"
    assert gw.jobs.get(c).state == "TIMEOUT"
    # Slurm says completed but no spool file yet: not a success until the file arrives
    assert gw.jobs.get(d).state == "RUNNING"


def test_late_poll_never_reopens_a_finished_job(gw):
    """A reconciler that read the job as RUNNING before the spool finished it must not
    turn it back: its write is a compare-and-set from the state it read."""
    a = add_job(gw, model_files={"w": "x"})
    stale = gw.jobs.get(a)
    gw.slurm = FakeScheduler()
    end(gw, a, 0)
    ingest_spool(gw)
    from gateway.jobs.end import decide_end
    from gateway.jobs.shapes import shape_of

    shape = shape_of(stale)
    unit = shape.units(gw, stale)[0]
    shape.follow(gw, stale, unit, slurm_state("100", "PENDING"))
    failed = slurm_state("100", "FAILED", exit_code=1, end=time.time())
    shape.end_unit(gw, stale, unit, decide_end(None, failed, time.time()), None,
                   {"exit_code": 1})
    assert gw.jobs.get(a).state == "COMPLETED"


def test_slurm_unreachable_means_unknown_then_recovers(gw, capsys):
    a = add_job(gw, slurm_id="9", state="RUNNING")

    class Down(FakeScheduler):
        def query_active(self):
            raise SlurmUnavailable(["squeue"], 1, "Unable to contact slurm controller")

    gw.slurm = Down()
    sync_state(gw)
    job = gw.jobs.get(a)
    assert job.state == "UNKNOWN" and "last known state RUNNING" in job.reason
    assert "did not answer" in capsys.readouterr().err
    # Within the backoff, read commands answer from the database without asking Slurm.
    gw.slurm = FakeScheduler(queue={"9": slurm_state("9", "RUNNING")})
    sync_state(gw)
    assert gw.slurm.calls == [] and gw.jobs.get(a).state == "UNKNOWN"
    assert "has not answered since" in capsys.readouterr().err
    # Once the backoff has passed, Slurm is asked again and the state recovers.
    outage_file = gw.layout.spool / ".slurm-unreachable.json"
    data = json.loads(outage_file.read_text())
    outage_file.write_text(json.dumps({**data, "next": time.time() - 1}))
    sync_state(gw)
    assert gw.slurm.calls == ["squeue"] and gw.jobs.get(a).state == "RUNNING"
    assert not outage_file.exists()


def test_interrupted_submission_is_failed_after_grace(gw):
    a = add_job(gw, slurm_id=None, state="SUBMITTING")
    gw.slurm = FakeScheduler()
    reconcile(gw)
    assert gw.jobs.get(a).state == "SUBMITTING"
    gw.conn.execute("UPDATE jobs SET submitted = submitted - 3600 WHERE id = ?", (a,))
    reconcile(gw)
    job = gw.jobs.get(a)
    assert job.state == "FAILED" and "interrupted" in job.reason
    assert gw.slurm.calls == ["squeue", "squeue", "sacct-since"]


def test_submitting_job_adopted_by_its_comment(gw):
    a = add_job(gw, slurm_id=None, state="SUBMITTING")
    other_home = add_job(gw, slurm_id=None, state="SUBMITTING")
    gw.slurm = FakeScheduler(queue={
        "77": slurm_state("77", "RUNNING", comment=f"gw:{gw.home_id}:{a}"),
        "78": slurm_state("78", "RUNNING", comment=f"gw:ffffffffffffffff:{other_home}")})
    reconcile(gw)
    job = gw.jobs.get(a)
    assert job.slurm_job_id == "77" and job.state == "RUNNING"
    assert gw.jobs.get(other_home).slurm_job_id is None
    reconcile(gw)  # a second pass counts it once
    assert gw.conn.execute("SELECT COUNT(*) FROM jobs WHERE slurm_job_id = '77'").fetchone()[0] == 1


def test_spool_format_round_trip():
    record = SpoolRecord(FORMAT, "abc", 3, "12", 0, True, "n1", 1, 2)
    assert parse_record(json.dumps(record.as_json())) == record
    old = parse_record('{"job_id": 3, "exit_code": 0, "slurm_job_id": "12", "node": "n"}')
    assert old.format == 1 and old.clean
    with pytest.raises(SpoolFormatError, match="exit_code"):
        parse_record('{"format": 2, "home_id": "a", "job_id": 3, "exit_code": "0"}')


def test_shell_writer_writes_what_the_reader_reads(tmp_path):
    """The job side and the login side share one definition: run the rendered bash."""
    lines = ["set -u", "GW_SPOOL_DIR=$1", "GW_HOME_ID=h0me", "GW_JOB_ID=12",
             "GW_SLURM_ID=777", "GW_TASK=", "GW_SPOOL_NAME=12", "gw_started=100",
             shell_writer(), "gw_write_spool 3 false",
             # a sweep's task 5 (Slurm array job 780)
             "GW_SLURM_ID=780_5", "GW_TASK=5", "GW_SPOOL_NAME=12.5", "gw_write_spool 0 true"]
    script = "\n".join(lines)
    subprocess.run(["bash", "-c", script, "bash", str(tmp_path)], check=True)
    record = parse_record((tmp_path / "12.json").read_text())
    assert (record.home_id, record.job_id, record.slurm_job_id, record.exit_code,
            record.clean, record.started, record.task) == ("h0me", 12, "777", 3, False, 100,
                                                          None)
    assert record.node and record.ended >= 100
    task = parse_record((tmp_path / "12.5.json").read_text())
    assert (task.job_id, task.slurm_job_id, task.task, task.exit_code, task.clean) == (
        12, "780_5", 5, 0, True)
    # no temp file left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["12.5.json", "12.json"]
