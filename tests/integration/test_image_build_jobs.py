"""Image builds as Slurm jobs (the image_build kind), on the real local Slurm: BUILDING while
the build job runs, READY after; a job submitted meanwhile waits and sees the image; a
corrupt archive FAILED with the reader's reason and the job waiting on it failing with it;
`gw image rm` during a build cancels it and leaves no file; two imports at once, one SIF."""

from __future__ import annotations

import json
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from tests.conftest import run_gw
from tests.integration.conftest import gw_ok


@pytest.fixture()
def slurm_home(flow_home, tmp_path) -> dict[str, str]:
    """A home of its own whose imports build in Slurm jobs, with an algorithm."""
    env = {**flow_home, "GW_HOME": str(tmp_path / "home"), "GW_IMAGE_BUILD": "slurm"}
    algo = tmp_path / "algo"
    algo.mkdir()
    (algo / "train.sh").write_text("echo seen: $(cat /etc/marker)\n")
    gw_ok(env, "algo", "push", str(algo), "--name", "probe", "-q")
    return env


def marked_archive(base: Path, marker: str, **options) -> Path:
    """A busybox image with /etc/marker holding ``marker`` (content of its own)."""
    from tests.support.images import busybox_rootfs, make_archive

    rootfs = busybox_rootfs(base / f"rootfs-{marker}")
    (rootfs / "etc").mkdir(exist_ok=True)
    (rootfs / "etc" / "marker").write_text(marker + "\n")
    return make_archive(base / f"{marker}.tar", [rootfs], **options)


def corrupt(archive: Path) -> Path:
    """Overwrite bytes in the middle of the archive's layer: its manifest and config still
    read (the import is accepted), the layer does not (the build fails)."""
    with tarfile.open(archive) as outer:
        layer = next(m for m in outer.getmembers() if m.name.endswith("layer.tar"))
    with archive.open("r+b") as handle:
        handle.seek(layer.offset_data + layer.size // 2)
        handle.write(b"\xff" * 4096)
    return archive


def show(env: dict[str, str], name: str) -> dict:
    return json.loads(gw_ok(env, "image", "show", name, "--json"))


def wait_image(env: dict[str, str], name: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        image = show(env, name)
        if image["state"] != "BUILDING":
            return image
        time.sleep(1)
    raise AssertionError(f"{name} still BUILDING after {timeout} s: {image}")


def wait_job(env: dict[str, str], job_id: int, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = json.loads(gw_ok(env, "job", "show", str(job_id), "--json"))
        if job["state"] not in ("SUBMITTING", "PENDING", "RUNNING"):
            return job
        time.sleep(1)
    raise AssertionError(f"job {job_id} not finished after {timeout} s")


def images_dir(env: dict[str, str]) -> list[str]:
    return sorted(p.name for p in (Path(env["GW_HOME"]) / "images").iterdir()
                  if not p.name.startswith(".") or "partial" in p.name)


def test_import_builds_in_slurm_and_a_job_waits_for_it(slurm_home, tmp_path):
    archive = marked_archive(tmp_path, "built-in-slurm")
    out = json.loads(gw_ok(slurm_home, "image", "import", str(archive), "--name", "m:v1",
                           "--json"))
    assert out["state"] == "BUILDING" and out["build_slurm_job"] and out["converted"]
    listed = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "JobID,JobName",
                             "-j", out["build_slurm_job"]], capture_output=True, text=True,
                            check=True).stdout
    queued = subprocess.run(["squeue", "-h", "-j", out["build_slurm_job"], "-o", "%j"],
                            capture_output=True, text=True, check=False).stdout
    assert "image-build" in listed + queued      # Slurm knows the build job
    job = json.loads(gw_ok(slurm_home, "job", "submit", "--image", "m:v1", "--algo", "probe",
                           "--json", "--", "sh", "train.sh"))
    ended = wait_job(slurm_home, job["id"])
    assert ended["state"] == "COMPLETED", ended
    image = show(slurm_home, "m:v1")
    assert image["state"] == "READY" and image["bytes"] > 0 and image["reason"] == ""
    assert Path(image["sif"]).is_file()
    assert "seen: built-in-slurm" in gw_ok(slurm_home, "job", "logs", str(job["id"]))
    log = gw_ok(slurm_home, "image", "logs", "m:v1")
    assert "gw-build: done" in log
    listing = gw_ok(slurm_home, "image", "list")
    assert "READY" in listing


def test_a_corrupt_archive_fails_its_build_and_the_job_waiting_on_it(slurm_home, tmp_path):
    archive = corrupt(marked_archive(tmp_path, "corrupt"))
    gw_ok(slurm_home, "image", "import", str(archive), "--name", "bad:v1", "-q")
    job = json.loads(gw_ok(slurm_home, "job", "submit", "--image", "bad:v1", "--algo",
                           "probe", "--json", "--", "sh", "train.sh"))
    image = wait_image(slurm_home, "bad:v1")
    assert image["state"] == "FAILED"
    assert "layer" in image["reason"] or "digest" in image["reason"], image["reason"]
    assert not Path(image["sif"]).exists()
    assert [n for n in images_dir(slurm_home) if n.endswith(".sif") or "partial" in n] == []
    ended = wait_job(slurm_home, job["id"])
    assert ended["state"] == "FAILED" and ended["started"] is None, ended
    assert "image bad:v1 failed to build" in ended["reason"]
    assert image["reason"][:40] in ended["reason"]
    # a new job against it is refused at once, naming the build's error
    refused = run_gw("job", "submit", "--image", "bad:v1", "--algo", "probe", "--", "sh",
                     "train.sh", env=slurm_home, check=False)
    assert refused.returncode != 0 and "failed to build" in refused.stderr
    # --wait says so too, with a non-zero exit
    again = run_gw("image", "import", str(archive), "--name", "bad:v1", "--wait", "-q",
                   env=slurm_home, check=False)
    assert again.returncode == 1 and "failed to build" in again.stderr


@pytest.fixture()
def busy_node(cluster_env):
    """The cluster's node taken whole by another job, so a build job stays queued."""
    blocker = subprocess.run(["sbatch", "--parsable", "--cpus-per-task=2", "--mem=64M",
                              "--output=/dev/null", "--job-name=blocker", "--wrap",
                              "sleep 600"], capture_output=True, text=True,
                             check=True).stdout.strip().split(";")[0]
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            state = subprocess.run(["squeue", "-h", "-j", blocker, "-o", "%T"],
                                   capture_output=True, text=True).stdout.strip()
            if state == "RUNNING":
                break
            time.sleep(0.5)
        else:
            pytest.fail("the blocking job never started")
        yield blocker
    finally:
        subprocess.run(["scancel", blocker], check=False)


def test_rm_during_a_build_cancels_it_and_leaves_no_file(slurm_home, tmp_path, busy_node):
    archive = marked_archive(tmp_path, "removed")
    out = json.loads(gw_ok(slurm_home, "image", "import", str(archive), "--name", "gone:v1",
                           "--json"))
    queued = subprocess.run(["squeue", "-h", "-j", out["build_slurm_job"], "-o", "%T"],
                            capture_output=True, text=True, check=False).stdout.strip()
    assert queued == "PENDING"
    assert show(slurm_home, "gone:v1")["state"] == "BUILDING"
    removed = json.loads(gw_ok(slurm_home, "image", "rm", "gone:v1", "--json"))
    assert removed["sif_deleted"]
    state = subprocess.run(["squeue", "-h", "-j", out["build_slurm_job"], "-o", "%T"],
                           capture_output=True, text=True, check=False).stdout.strip()
    assert state in ("", "CANCELLED", "COMPLETING")
    assert run_gw("image", "show", "gone:v1", env=slurm_home, check=False).returncode != 0
    assert [n for n in images_dir(slurm_home) if "sha256" in n] == []
    build = wait_job(slurm_home, out["build_job"])
    assert build["state"] == "CANCELLED", build


def test_two_imports_at_once_make_one_build(slurm_home, tmp_path):
    archive = marked_archive(tmp_path, "twice")
    import os

    from tests.conftest import gw_executable

    procs = [subprocess.Popen([gw_executable(), "image", "import",
                               str(archive), "--name", f"twice:{n}", "--json"],
                              env={**os.environ, **slurm_home}, stdout=subprocess.PIPE,
                              text=True) for n in ("a", "b")]
    outs = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    assert sorted(o["converted"] for o in outs) == [False, True]
    assert len({o["digest"] for o in outs}) == 1
    a, b = wait_image(slurm_home, "twice:a"), wait_image(slurm_home, "twice:b")
    assert a["state"] == b["state"] == "READY" and a["sif"] == b["sif"]
    assert [n for n in images_dir(slurm_home) if n.endswith(".sif")] == [Path(a["sif"]).name]
    builds = [j for j in json.loads(gw_ok(slurm_home, "job", "list", "--json"))
              if j["kind"] == "image_build"]
    assert len(builds) == 1


def test_an_archive_opened_for_writing_during_its_build_fails_it_and_leaves_nothing(
        slurm_home, tmp_path):
    """The build job holds a read lease on the archive (its owner's, on a local disk) and
    copies what it checked without reading it again: someone opening the archive for
    writing meanwhile breaks the lease, and the build fails rather than install an image
    that may not be what was checked. The writer's open waits for the build to let go."""
    import sys

    from tests.support.images import slow_tar2sqfs

    archive = marked_archive(tmp_path, "rewritten")
    started = tmp_path / "started"
    env = {**slurm_home, **slow_tar2sqfs(tmp_path / "bin", started, 5)}
    gw_ok(env, "image", "import", str(archive), "--name", "rw:v1", "-q")
    deadline = time.monotonic() + 120
    while not started.exists():                  # the check is done, the squash starts
        assert time.monotonic() < deadline, "the build never reached its SquashFS writer"
        time.sleep(0.1)
    writer = subprocess.Popen([sys.executable, "-c", "import sys; "
                               "open(sys.argv[1], 'r+b').close()", str(archive)])
    image = wait_image(env, "rw:v1")
    assert image["state"] == "FAILED", image
    assert "opened for writing while it was converted" in image["reason"], image["reason"]
    assert not Path(image["sif"]).exists()
    assert [n for n in images_dir(env) if n.endswith(".sif") or "partial" in n] == []
    assert writer.wait(timeout=60) == 0
