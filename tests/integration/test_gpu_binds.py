"""GPU passthrough lines with bubblewrap, run for real against stand-in device nodes.

CI has no GPU, so Slurm cannot be asked for one; this runs the container lines that a
`--gpus 1` job script holds, with /dev/nvidia0 and /dev/nvidiactl made as copies of
/dev/null (same major/minor), and checks they appear inside the container.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from containers.archive import read_archive
from containers.build import build_sif_from_archive
from containers.runtime import (
    ContainerSpec,
    Mount,
    container_script,
    write_env_file,
)
from tests.support.images import busybox_rootfs, make_archive

FAKE_DEVICES = (Path("/dev/nvidia0"), Path("/dev/nvidiactl"))


@pytest.fixture()
def fake_gpu_devices():
    made = []
    null = os.stat("/dev/null").st_rdev
    for device in FAKE_DEVICES:
        if not device.exists():
            os.mknod(device, 0o666 | stat.S_IFCHR, null)
            made.append(device)
    yield
    for device in made:
        device.unlink()


def test_gpu_device_nodes_reach_the_container(tmp_path, fake_gpu_devices):
    archive = read_archive(make_archive(tmp_path / "bb.tar", [busybox_rootfs(tmp_path / "r")]))
    sif = build_sif_from_archive(archive, tmp_path / "bb.sif", tmp_path / "work")
    (tmp_path / "code").mkdir()
    (tmp_path / "scratch").mkdir()
    spec = ContainerSpec(sif=str(sif.path), partition_offset=sif.partition_offset,
                         scratch_parent=str(tmp_path / "scratch"),
                         env_file=str(tmp_path / "container.env"),
                         mounts=(Mount(str(tmp_path / "code"), "/code"),), workdir="/code",
                         env=(("PATH", "/bin"),), gpus=1,
                         command=("sh", "-c", "ls /dev/nvidia0 /dev/nvidiactl && "
                                  "echo \"$LD_LIBRARY_PATH\" && ls -d /.singularity.d/libs && "
                                  "echo \"cuda=$CUDA_VISIBLE_DEVICES\""))
    lines = container_script(spec, "bwrap")
    write_env_file(spec, "bwrap")
    script = f"set -e\n{lines.setup}\nset +e\n{lines.run}\nrc=$?\n{lines.teardown}\nexit $rc\n"
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": "0"}, check=False)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.split()
    assert "/dev/nvidia0" in out and "/dev/nvidiactl" in out
    assert "/.singularity.d/libs" in out
    assert "cuda=0" in out
    assert list((tmp_path / "scratch").iterdir()) == []
