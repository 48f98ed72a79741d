"""Sweep tasks against a fake scheduler: each task ends once, with one version; foreign
task files change nothing; tasks without spool files end from accounting."""

import time

from gateway.jobs.model import JobSpec
from gateway.slurm.adapter import SlurmJobState
from spool.format import FORMAT, SpoolRecord, write_record
from spool.ingest import ingest_spool
from spool.reconcile import reconcile
from tests.support.fakes import FakeScheduler, add_job


def add_sweep(gw, params, slurm_id="200"):
    gw.layout.ensure()
    spec = JobSpec(command=("sh", "t.sh"), env={}, runtime="bwrap", resources={"cpus": 1},
                   algo="det@v1", image="img:v1", image_digest="sha256:abc", dataset=None,
                   extra={"tasks": params, "commands": [["sh", "t.sh"]] * len(params)})
    job = gw.jobs.create(kind="training", shape="array", origin="template", name="s", spec=spec,
                         model_name="sw", jobs_root=gw.layout.jobs, algo_version_id=None,
                         data_version_id=None, image_id=None)
    assert gw.jobs.attach_slurm_id(job.id, slurm_id, "RUNNING")
    for index in range(len(params)):
        model = job.job_dir / "tasks" / str(index) / "model"
        model.mkdir(parents=True)
        (model / "w").write_text(f"weights {index}")
    return job.id


def task_end(gw, job_id, task, code, slurm="200", clean=True):
    write_record(gw.layout.spool, SpoolRecord(
        format=FORMAT, home_id=gw.home_id, job_id=job_id, slurm_job_id=f"{slurm}_{task}",
        exit_code=code, clean=clean, node="n1", started=1, ended=int(time.time()),
        task=task))


def test_each_task_ends_once_with_its_own_version(gw):
    gw.slurm = FakeScheduler()
    job_id = add_sweep(gw, [{"lr": "1"}, {"lr": "2"}, {"lr": "3"}])
    task_end(gw, job_id, 0, 0)
    task_end(gw, job_id, 1, 3)
    ingest_spool(gw)
    assert gw.jobs.get(job_id).state == "RUNNING"  # task 2 still runs
    task_end(gw, job_id, 0, 0)  # the same end again (a second ingester, a replay)
    task_end(gw, job_id, 2, 0)
    ingest_spool(gw)
    tasks = gw.jobs.tasks(job_id)
    assert [(t.state, t.model_ref) for t in tasks] == [
        ("COMPLETED", "sw@v1"), ("FAILED", None), ("COMPLETED", "sw@v2")]
    versions = gw.store("model").versions("sw")
    assert [v.meta["params"] for v in versions] == [{"lr": "1"}, {"lr": "3"}]
    assert (versions[1].path / "w").read_text() == "weights 2"
    job = gw.jobs.get(job_id)
    assert job.state == "FAILED" and "1 FAILED" in job.reason and job.model_version_id is None


def test_foreign_task_files_are_put_aside(gw):
    gw.slurm = FakeScheduler()
    job_id = add_sweep(gw, [{"a": "1"}])
    plain = add_job(gw, slurm_id="300")
    task_end(gw, job_id, 0, 0, slurm="201")      # another array
    task_end(gw, job_id, 5, 0)                   # no such task
    task_end(gw, plain, 0, 0, slurm="300")       # not a sweep
    report = ingest_spool(gw)
    assert len(report.put_aside) == 3, report.put_aside
    assert gw.jobs.tasks(job_id)[0].state == "PENDING"
    assert not (gw.layout.kind_root("model") / "sw").exists()


def test_tasks_without_spool_files_end_from_accounting(gw):
    job_id = add_sweep(gw, [{"a": "1"}, {"a": "2"}, {"a": "3"}])
    task_end(gw, job_id, 0, 0)
    ingest_spool(gw)
    long_ago = time.time() - 3600
    gw.slurm = FakeScheduler(accounting={
        "201": SlurmJobState("201", "CANCELLED by 0", "n1", 0, long_ago, long_ago,
                             array_task="200_1"),
        "200": SlurmJobState("200", "CANCELLED by 0", "", 0, None, long_ago,
                             array_task="200_[1-2%1]")})
    reconcile(gw)
    assert [t.state for t in gw.jobs.tasks(job_id)] == ["COMPLETED", "CANCELLED", "CANCELLED"]
    job = gw.jobs.get(job_id)
    assert job.state == "CANCELLED" and "2 CANCELLED" in job.reason
