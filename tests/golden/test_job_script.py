"""Golden tests of rendered sbatch scripts: compared byte for byte with files beside this one.

Rewrite them on purpose with ``GW_UPDATE_GOLDEN=1 pytest tests/golden``, then read the diff.
"""

import os
from pathlib import Path

import pytest

from hpc_gateway.gateway.config import KEYS, Config
from hpc_gateway.gateway.context import Gateway
from hpc_gateway.gateway.images import ImageRecord
from hpc_gateway.gateway.jobs import JobRequest, render_job_script
from hpc_gateway.gateway.specs import Resources, VersionRef
from hpc_gateway.gateway.stores import VersionInfo

GOLDEN = Path(__file__).parent


def gateway() -> Gateway:
    values = {k: v for k, (v, _h) in KEYS.items()}
    values.update(home="/shared/gw", database="/shared/gw/gateway.db")
    return Gateway(Config(values))


IMAGE = ImageRecord(1, "detectron2:v1", "sha256:" + "ab" * 32, Path("/shared/gw/images/x.sif"),
                    4096, 1000, {"env": {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}}, "x.tar", 0)
ALGO = VersionInfo(1, "algo", "detectron2", 3, Path("/shared/gw/algos/detectron2/v3"), 1, 1, 0)
DATA = VersionInfo(2, "data", "coco", 1, Path("/shared/gw/datasets/coco/v1"), 1, 1, 0)


def request(**kw) -> JobRequest:
    base = {"algo": VersionRef("detectron2", None), "image": "detectron2:v1",
            "data": VersionRef("coco", None), "name": "train run",
            "command": ("python", "tools/train_net.py", "--lr", "0.02"), "env": {},
            "resources": Resources(4, 0, 16384, 2048, 7200, "")}
    base.update(kw)
    return JobRequest(**base)


def check(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("GW_UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"{path} missing: run with GW_UPDATE_GOLDEN=1"
    assert text == path.read_text()


@pytest.mark.parametrize("runtime", ["bwrap", "apptainer"])
def test_basic_job(runtime):
    text = render_job_script(gateway(), job_id=7, name="train run",
                             job_dir=Path("/shared/gw/jobs/7"), image=IMAGE, algo=ALGO,
                             data=DATA, request=request(), runtime=runtime)
    check(f"job_basic_{runtime}.sbatch", text)


def test_gpu_job_with_hostile_values():
    hostile = "it's \"q\" $(touch /tmp/pwned) `id` \nnew line;  spaces"
    text = render_job_script(
        gateway(), job_id=8, name=hostile, job_dir=Path("/shared/gw/jobs/8"), image=IMAGE,
        algo=ALGO, data=None, runtime="bwrap",
        request=request(name=hostile, command=("sh", "-c", hostile), env={"MSG": hostile},
                        resources=Resources(8, 2, 65536, 8192, 86400, "gpu")))
    check("job_gpu_hostile_bwrap.sbatch", text)
    assert "#SBATCH --gres=gpu:2" in text and "#SBATCH --partition=gpu" in text
    assert "#SBATCH --mem=72G" in text  # memory + shm
    sbatch_lines = [line for line in text.splitlines() if line.startswith("#SBATCH")]
    assert all("$(" not in line and "`" not in line for line in sbatch_lines)
