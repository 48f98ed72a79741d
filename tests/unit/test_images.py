"""gw image import with the real conversion tools: dedup by digest, nothing half-made."""

import pytest

from gateway.common.errors import InvalidInput, NotFound
from gateway.jobs.image_builds import BuildOptions, import_image
from gateway.stores.images import get_image, list_images, remove_image
from tests.support.images import busybox_rootfs, make_archive

pytestmark = pytest.mark.container


@pytest.fixture(scope="module")
def archives(tmp_path_factory):
    base = tmp_path_factory.mktemp("img")
    rootfs = busybox_rootfs(base / "rootfs")
    return {"legacy": make_archive(base / "legacy.tar", [rootfs], layout="docker-legacy"),
            "oci": make_archive(base / "oci.tar", [rootfs], layout="docker-oci")}


def home_files(gw):
    return sorted(str(p.relative_to(gw.config.home)) for p in gw.config.home.rglob("*")
                  if not p.name.startswith("gateway.db"))


def test_import_dedups_across_names_and_layouts(gw, archives):
    first, converted = import_image(gw, archives["legacy"], "bb:v1", BuildOptions(here=True))
    assert converted and first.sif_path.is_file() and first.partition_offset > 0
    second, converted = import_image(gw, archives["oci"], "other/bb:v2", BuildOptions(here=True))
    assert not converted and second.digest == first.digest
    assert len(list(gw.layout.images.glob("*.sif"))) == 1
    assert [i.name for i in list_images(gw)] == ["bb:v1", "other/bb:v2"]
    assert get_image(gw, "bb:v1").config["env"] == {"PATH": "/bin"}
    _image, deleted = remove_image(gw, "bb:v1")
    assert not deleted and first.sif_path.exists()
    _image, deleted = remove_image(gw, "other/bb:v2")
    assert deleted and not first.sif_path.exists()
    with pytest.raises(NotFound):
        get_image(gw, "bb:v1")


def test_failed_import_leaves_nothing(gw, tmp_path):
    gw.layout.ensure()
    before = home_files(gw)
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"garbage" * 1000)
    with pytest.raises(InvalidInput, match="not a tar"):
        import_image(gw, bad, "bad:v1", BuildOptions(here=True))
    with pytest.raises(InvalidInput, match="invalid image name"):
        import_image(gw, bad, "Bad Name", BuildOptions(here=True))
    assert home_files(gw) == before
    assert list_images(gw) == []


def test_last_name_of_an_image_in_use_is_kept(gw, archives):
    import time

    from gateway.home import database as db

    image, _ = import_image(gw, archives["legacy"], "busy:v1", BuildOptions(here=True))
    with db.transaction(gw.conn):
        gw.conn.execute("INSERT INTO jobs (name, state, submitted, image_id, model_name, "
                        "spec_json, job_dir) VALUES ('j', 'RUNNING', ?, ?, 'm', '{}', '')",
                        (time.time(), image.id))
    with pytest.raises(InvalidInput, match="used by active job"):
        remove_image(gw, "busy:v1")
    assert get_image(gw, "busy:v1").sif_path.exists()


def test_a_killed_builds_temp_sif_goes_with_the_next_build(gw, archives):
    from containers.archive import read_archive

    gw.layout.ensure()
    digest = read_archive(archives["legacy"]).config_digest
    stale = gw.layout.images / f".{digest.replace(':', '-')}.sif.0123456789ab.partial"
    stale.write_bytes(b"half a SIF")                  # as a SIGKILLed import leaves it
    image, converted = import_image(gw, archives["legacy"], "again:v1", BuildOptions(here=True))
    assert converted and not stale.exists()
    assert sorted(p.name for p in gw.layout.images.iterdir()) == [image.sif_path.name]
