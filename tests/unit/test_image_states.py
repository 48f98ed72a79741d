"""An image's states in the store (gateway/stores/images.py): one record per content,
BUILDING until its own build ends it, READY or FAILED; a build that cannot go on takes
the record, its names and its temp files with it."""

import pytest

from containers.archive import read_archive
from gateway.common.errors import InvalidInput
from gateway.jobs.submit import check_runnable
from gateway.stores.images import (
    abandon_build,
    claim_image,
    get_image,
    list_images,
    record_build_end,
    set_build_job,
)
from tests.support.images import busybox_rootfs, make_archive


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    base = tmp_path_factory.mktemp("states")
    return read_archive(make_archive(base / "bb.tar", [busybox_rootfs(base / "rootfs")]))


def claim(gw, archive, name):
    return claim_image(gw, name, archive.config_digest, archive.config, "bb.tar")


def test_one_record_per_content_and_only_its_own_build_ends_it(gw, archive):
    first, build = claim(gw, archive, "a:v1")
    assert build and first.state == "BUILDING" and not first.ready
    second, build_again = claim(gw, archive, "b:v1")
    assert not build_again and second.id == first.id and second.state == "BUILDING"
    set_build_job(gw, first.id, 41)
    assert record_build_end(gw, first.id, 99, result={"sif": "/x", "partition_offset": 1,
                                                      "size_bytes": 2}) is None
    assert get_image(gw, "a:v1").state == "BUILDING"
    name = record_build_end(gw, first.id, 41, result={
        "sif": str(first.sif_path), "partition_offset": 4096, "size_bytes": 10})
    assert name == "a:v1"
    made = get_image(gw, "b:v1")
    assert (made.state, made.partition_offset, made.size_bytes) == ("READY", 4096, 10)
    # repeated (a second ingester): the image stays as decided
    record_build_end(gw, first.id, 41, reason="late")
    assert get_image(gw, "b:v1").state == "READY"
    assert not claim(gw, archive, "c:v1")[1]


def test_a_failed_image_says_why_refuses_jobs_and_is_built_again_on_import(gw, archive):
    image, _ = claim(gw, archive, "f:v1")
    set_build_job(gw, image.id, 7)
    partial = image.sif_path.with_name(f".{image.sif_path.name}.abc.partial")
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_bytes(b"half")
    record_build_end(gw, image.id, 7, reason="layer 1: digest mismatch")
    failed = get_image(gw, "f:v1")
    assert failed.state == "FAILED" and failed.reason == "layer 1: digest mismatch"
    assert not partial.exists()
    with pytest.raises(InvalidInput, match="failed to build: layer 1: digest mismatch"):
        check_runnable(failed)
    again, build = claim(gw, archive, "f:v2")
    assert build and again.id == image.id and again.state == "BUILDING" and again.reason == ""
    assert again.build_job_id is None
    with pytest.raises(InvalidInput, match="being built outside Slurm"):
        check_runnable(again)   # no build job to wait for yet


def test_an_abandoned_build_leaves_no_record_name_or_file(gw, archive):
    image, _ = claim(gw, archive, "gone:v1")
    claim(gw, archive, "gone:v2")
    partial = image.sif_path.with_name(f".{image.sif_path.name}.def.partial")
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_bytes(b"half")
    abandon_build(gw, image, "sbatch refused")
    assert list_images(gw, site=False) == []
    assert gw.conn.execute("SELECT COUNT(*) FROM images").fetchone()[0] == 0
    assert not partial.exists()


def test_a_build_of_an_uploaded_archive_removes_it_even_when_it_fails(tmp_path):
    """An archive the dashboard kept for its build job alone goes when the build ends."""
    import json

    from containers.build_job import ERROR_FILE, main

    archive = tmp_path / "archives" / "upload.tar"
    archive.parent.mkdir()
    archive.write_bytes(b"not an image archive" * 50)
    request = {"source": "archive", "archive": str(archive), "remove_archive": True,
               "digest": "sha256:" + "0" * 64, "dest": str(tmp_path / "images" / "x.sif"),
               "scratch": str(tmp_path), "builder": "auto", "max_image_bytes": 1 << 30,
               "max_zip_ratio": 200.0}
    job_dir = tmp_path / "job"
    job_dir.mkdir()
    (job_dir / "build-request.json").write_text(json.dumps(request))
    assert main([str(job_dir / "build-request.json")]) == 1
    assert (job_dir / ERROR_FILE).read_text().strip()
    assert not archive.exists()
    assert not (tmp_path / "images" / "x.sif").exists()
