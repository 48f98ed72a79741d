"""Submission against a fake Slurm boundary: what is left behind when sbatch fails."""

import pytest

from hpc_gateway.gateway.errors import SlurmError
from hpc_gateway.gateway.images import import_archive
from hpc_gateway.gateway.jobs import JobRequest, list_jobs, submit_job
from hpc_gateway.gateway.slurm.adapter import PartitionLimits
from hpc_gateway.gateway.specs import Resources, VersionRef
from tests.support.images import busybox_rootfs, make_archive

pytestmark = pytest.mark.container


class FakeSlurm:
    def __init__(self, fail: bool):
        self.fail = fail
        self.scripts = []

    def partitions(self):
        return {"debug": PartitionLimits("debug", 4, 8192, 0, True, True)}

    def submit(self, script):
        self.scripts.append(script.read_text())
        if self.fail:
            raise SlurmError(["sbatch", "--parsable", str(script)], 1,
                             "sbatch: error: Batch job submission failed: Invalid account")
        return "4242"


@pytest.fixture()
def ready(gw, tmp_path):
    rootfs = busybox_rootfs(tmp_path / "rootfs")
    import_archive(gw, make_archive(tmp_path / "bb.tar", [rootfs]), "bb:v1")
    code = tmp_path / "code"
    code.mkdir()
    (code / "run.sh").write_text("echo hi\n")
    gw.store("algo").push(code, "algo", {})
    return gw


def request():
    return JobRequest(algo=VersionRef("algo", None), image="bb:v1", data=None, name=None,
                      command=("sh", "run.sh"), env={},
                      resources=Resources(1, 0, 512, 64, 600, ""))


def test_failed_sbatch_leaves_no_row_and_no_directory(ready):
    ready.slurm = FakeSlurm(fail=True)
    with pytest.raises(SlurmError, match="Invalid account"):
        submit_job(ready, request())
    assert list_jobs(ready) == []
    assert list(ready.layout.jobs.iterdir()) == []
    assert ready.slurm.scripts and "#SBATCH --mem=576M" in ready.slurm.scripts[0]


def test_submit_records_versions_and_private_code(ready):
    ready.slurm = FakeSlurm(fail=False)
    job = submit_job(ready, request())
    assert job["state"] == "PENDING" and job["slurm_job_id"] == "4242"
    assert job["algo"] == "algo@v1" and job["model_name"] == "algo"
    assert job["resources"]["partition"] == "debug"
    code = ready.layout.job_dir(job["id"]) / "code" / "run.sh"
    code.write_text("changed by the job\n")  # the private copy is writable...
    stored = ready.store("algo").resolve(VersionRef("algo", 1)).path / "run.sh"
    assert stored.read_text() == "echo hi\n"  # ...and the stored version never changes
