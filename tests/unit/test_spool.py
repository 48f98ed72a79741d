"""Ingest and harvest against a fake Slurm backend (the real one is in tests/integration)."""

import threading
import time

import pytest

from hpc_gateway.gateway import db
from hpc_gateway.gateway.slurm.adapter import SlurmJobState
from hpc_gateway.spool.harvest import incoming_dir
from hpc_gateway.spool.ingest import ingest_spool
from hpc_gateway.spool.layout import pending_spool_files, write_spool_file
from hpc_gateway.spool.reconcile import reconcile
from hpc_gateway.spool.sync import sync_state


class FakeSlurm:
    def __init__(self, queue=None, accounting=None):
        self.queue_states = queue or {}
        self.accounting_states = accounting or {}
        self.calls = []

    def queue(self):
        self.calls.append("squeue")
        return self.queue_states

    def accounting(self, ids):
        ids = list(ids)
        self.calls.append(("sacct", tuple(sorted(ids))))
        return {i: s for i, s in self.accounting_states.items() if i in ids}


def add_job(gw, *, model_files=None, slurm_id="100", model_name="det", state="RUNNING"):
    gw.layout.ensure()
    spec = {"command": ["python", "train.py"], "env": {}, "runtime": "bwrap",
            "resources": {"cpus": 1}, "algo": "det@v1", "image": "img:v1",
            "image_digest": "sha256:abc", "dataset": None}
    with db.transaction(gw.conn):
        cur = gw.conn.execute(
            "INSERT INTO jobs (name, slurm_job_id, state, submitted, model_name, spec_json, "
            "job_dir) VALUES (?, ?, ?, ?, ?, ?, '')",
            ("j", slurm_id, state, time.time(), model_name, db.dumps(spec)))
        job_id = cur.lastrowid
        job_dir = gw.layout.job_dir(job_id)
        gw.conn.execute("UPDATE jobs SET job_dir = ? WHERE id = ?", (str(job_dir), job_id))
    (job_dir / "model").mkdir(parents=True)
    for rel, content in (model_files or {}).items():
        path = job_dir / "model" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    return job_id


def job(gw, job_id):
    return gw.conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()


def end(gw, job_id, code, slurm_id="100"):
    write_spool_file(gw.layout.spool, {"job_id": job_id, "slurm_job_id": slurm_id,
                                       "exit_code": code, "node": "n1", "started": 1.0,
                                       "ended": 2.0})


def test_success_harvests_versions_with_lineage(gw):
    gw.slurm = FakeSlurm()
    a = add_job(gw, model_files={"w.txt": "weights-1"})
    b = add_job(gw, model_files={"w.txt": "weights-2"}, slurm_id="101")
    end(gw, a, 0)
    end(gw, b, 0, "101")
    assert sorted(ingest_spool(gw)) == [a, b]
    versions = gw.store("model").versions("det")
    assert [v.number for v in versions] == [1, 2]
    assert (versions[0].path / "w.txt").read_text() == "weights-1"
    assert versions[1].meta["job_id"] == b and versions[1].meta["algo"] == "det@v1"
    assert versions[1].meta["image_digest"] == "sha256:abc" and versions[1].meta["node"] == "n1"
    assert job(gw, a)["state"] == "COMPLETED" and job(gw, a)["exit_code"] == 0
    assert not pending_spool_files(gw.layout.spool)
    assert not (versions[0].path.stat().st_mode & 0o222)


def test_failure_makes_no_model(gw):
    gw.slurm = FakeSlurm()
    a = add_job(gw, model_files={"w.txt": "partial"})
    end(gw, a, 3)
    ingest_spool(gw)
    row = job(gw, a)
    assert row["state"] == "FAILED" and "exited with code 3" in row["reason"]
    assert row["model_version_id"] is None
    assert gw.conn.execute("SELECT COUNT(*) FROM versions").fetchone()[0] == 0


def test_signal_refined_by_sacct(gw):
    gw.slurm = FakeSlurm(accounting={"100": SlurmJobState("100", "CANCELLED", "CANCELLED by 0")})
    a = add_job(gw)
    end(gw, a, 143)
    ingest_spool(gw)
    assert job(gw, a)["state"] == "CANCELLED"
    assert ("sacct", ("100",)) in gw.slurm.calls


def test_ingest_twice_and_concurrently_is_idempotent(gw, gw_env):
    from hpc_gateway.gateway.context import Gateway

    gw.slurm = FakeSlurm()
    ids = [add_job(gw, model_files={"w": str(i)}, slurm_id=str(200 + i)) for i in range(6)]
    for i, job_id in enumerate(ids):
        end(gw, job_id, 0, str(200 + i))
    errors = []

    def worker():
        try:
            other = Gateway()
            other.slurm = FakeSlurm()
            ingest_spool(other)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
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


def test_crash_between_record_and_rename_is_finished(gw):
    from hpc_gateway.spool import harvest

    gw.slurm = FakeSlurm()
    a = add_job(gw, model_files={"w": "x"})
    real_finish = harvest._finish
    harvest._finish = lambda *args: (_ for _ in ()).throw(RuntimeError("crash"))
    end(gw, a, 0)
    with pytest.raises(RuntimeError):
        ingest_spool(gw)
    harvest._finish = real_finish
    assert incoming_dir(gw, "det", a).is_dir()
    ingest_spool(gw)  # the spool file is still there: the run finishes the harvest
    version = gw.store("model").versions("det")[0]
    assert (version.path / "w").read_text() == "x"
    assert not incoming_dir(gw, "det", a).exists()


def test_empty_model_makes_no_version(gw):
    gw.slurm = FakeSlurm()
    a = add_job(gw)
    end(gw, a, 0)
    ingest_spool(gw)
    assert job(gw, a)["state"] == "COMPLETED" and "empty" in job(gw, a)["reason"]


def test_bad_spool_file_set_aside(gw):
    gw.layout.ensure()
    (gw.layout.spool / "7.json").write_text("{not json")
    ingest_spool(gw)
    assert (gw.layout.spool / "bad" / "7.json").exists()


def test_reconcile_batches_and_maps(gw):
    now = time.time()
    a = add_job(gw, slurm_id="1", state="PENDING")
    b = add_job(gw, slurm_id="2", state="PENDING")
    c = add_job(gw, slurm_id="3", state="RUNNING")
    d = add_job(gw, slurm_id="4", state="RUNNING")
    gw.slurm = FakeSlurm(
        queue={"1": SlurmJobState("1", "RUNNING", "RUNNING", "n1", start=now)},
        accounting={"2": SlurmJobState("2", "CANCELLED", "CANCELLED by 0"),
                    "3": SlurmJobState("3", "TIMEOUT", "TIMEOUT", "n1", 0, now - 10, now - 5),
                    "4": SlurmJobState("4", "COMPLETED", "COMPLETED", "n1", 0, now - 9, now - 1)})
    reconcile(gw)
    assert gw.slurm.calls == ["squeue", ("sacct", ("2", "3", "4"))]
    assert job(gw, a)["state"] == "RUNNING" and job(gw, a)["node"] == "n1"
    assert job(gw, b)["state"] == "CANCELLED"
    assert job(gw, c)["state"] == "TIMEOUT"
    # Slurm says completed but no spool file yet: not a success until the file arrives
    assert job(gw, d)["state"] == "RUNNING"


def test_slurm_unreachable_means_unknown(gw):
    from hpc_gateway.gateway.errors import SlurmUnavailable

    class Down(FakeSlurm):
        def queue(self):
            raise SlurmUnavailable(["squeue"], 1, "Unable to contact slurm controller")

    a = add_job(gw, slurm_id="9", state="RUNNING")
    gw.slurm = Down()
    sync_state(gw)
    assert job(gw, a)["state"] == "UNKNOWN"


def test_interrupted_submission_is_failed_after_grace(gw):
    a = add_job(gw, slurm_id=None, state="SUBMITTING")
    gw.slurm = FakeSlurm()
    reconcile(gw)
    assert job(gw, a)["state"] == "SUBMITTING"
    with db.transaction(gw.conn):
        gw.conn.execute("UPDATE jobs SET submitted = submitted - 3600 WHERE id = ?", (a,))
    reconcile(gw)
    assert job(gw, a)["state"] == "FAILED" and "interrupted" in job(gw, a)["reason"]
    assert gw.slurm.calls == []
