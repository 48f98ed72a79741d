"""Submission against a fake scheduler: what is recorded and left behind in each outcome."""

import pytest

from gateway.common.errors import InvalidInput, SlurmError, SlurmUnavailable
from gateway.common.specs import Resources, VersionRef
from gateway.jobs.actions import cancel_job, list_jobs
from gateway.jobs.image_builds import BuildOptions, import_image
from gateway.jobs.request import JobRequest
from gateway.jobs.submit import submit_job
from tests.support.fakes import FakeScheduler
from tests.support.images import busybox_rootfs, make_archive

pytestmark = pytest.mark.container


@pytest.fixture()
def ready(gw, tmp_path):
    rootfs = busybox_rootfs(tmp_path / "rootfs")
    import_image(gw, make_archive(tmp_path / "bb.tar", [rootfs]), "bb:v1", BuildOptions(here=True))
    code = tmp_path / "code"
    code.mkdir()
    (code / "run.sh").write_text("echo hi\n")
    gw.store("algo").push(code, "algo", {})
    return gw


def request(**kw):
    base = {"algo": VersionRef("algo", None), "image": "bb:v1", "data": None, "name": None,
            "command": ("sh", "run.sh"), "env": {},
            "resources": Resources(1, 0, 512, 64, 600, "")}
    base.update(kw)
    return JobRequest(**base)


def test_refused_sbatch_stays_failed_and_the_next_job_gets_a_new_id(ready):
    ready.slurm = FakeScheduler(submit_error=SlurmError(
        ["sbatch"], 1, "sbatch: error: Batch job submission failed: Invalid account"))
    with pytest.raises(SlurmError, match="Invalid account"):
        submit_job(ready, request())
    [failed] = list_jobs(ready)
    job = ready.jobs.get(failed["id"])
    assert job.state == "FAILED" and "Invalid account" in job.reason
    assert job.script_path.exists()  # what was refused can be read
    assert not (job.job_dir / "code").exists()  # the copies are gone
    assert "#SBATCH --mem=576M" in ready.slurm.scripts[0]
    ready.slurm = FakeScheduler()
    second = submit_job(ready, request())
    assert second.id == job.id + 1 and second.state == "PENDING"


def test_submit_records_versions_identity_and_private_code(ready):
    ready.slurm = FakeScheduler()
    job = submit_job(ready, request())
    assert job.state == "PENDING" and job.slurm_job_id == "4243"
    assert job.spec.algo == "algo@v1" and job.model_name == "algo" and job.kind == "training"
    assert job.spec.resources["partition"] == "debug"
    assert f"#SBATCH --comment=gw:{ready.home_id}:{job.id}" in ready.slurm.scripts[0]
    code = job.job_dir / "code" / "run.sh"
    code.write_text("changed by the job\n")  # the private copy is writable...
    stored = ready.store("algo").resolve(VersionRef("algo", 1)).path / "run.sh"
    assert stored.read_text() == "echo hi\n"  # ...and the stored version never changes


def test_sbatch_timeout_leaves_the_job_submitting_for_adoption(ready):
    ready.slurm = FakeScheduler(submit_error=SlurmUnavailable(["sbatch"], None, "timed out"))
    with pytest.raises(SlurmUnavailable):
        submit_job(ready, request())
    [row] = list_jobs(ready)
    job = ready.jobs.get(row["id"])
    assert job.state == "SUBMITTING" and "did not answer" in job.reason
    assert (job.job_dir / "code").exists()  # the job may be running: its files stay
    with pytest.raises(InvalidInput, match="still being submitted"):
        cancel_job(ready, job.id)


def test_invalid_input_found_while_rendering_leaves_nothing(ready):
    ready.slurm = FakeScheduler()
    with pytest.raises(InvalidInput):
        submit_job(ready, request(command=("sh", "-c", "a\0b")))
    assert list_jobs(ready) == [] and list(ready.layout.jobs.iterdir()) == []
    job = submit_job(ready, request())
    assert job.id == 2  # ids are never handed out twice, even after a discarded record


def test_percent_in_home_is_escaped_for_slurm_filename_patterns(gw_env, monkeypatch, tmp_path):
    from gateway.common.quoting import slurm_filename

    assert slurm_filename(tmp_path / "a%jb") == f"{tmp_path}/a%%jb"
    with pytest.raises(InvalidInput, match="backslash"):
        slurm_filename(tmp_path / "a\\b")
