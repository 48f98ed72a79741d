"""Reading docker-save archives, and refusing hostile or broken ones with a clear error."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from containers.archive import (
    ImageArchiveError,
    check_layers,
    image_config_summary,
    read_archive,
)
from gateway.common.errors import InvalidInput
from tests.support.images import Entry, make_archive

OCI_TOP = {"blobs", "index.json", "manifest.json", "oci-layout", "repositories"}


def tiny_layer(root: Path) -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "tool").write_text("#!/bin/sh\n")
    return root


def names_in(path: Path) -> list[str]:
    with tarfile.open(path) as tar:
        return tar.getnames()


# -- both layouts, as `docker save` writes them ------------------------------------------

@pytest.mark.parametrize("layout", ["docker-legacy", "docker-oci"])
def test_both_layouts_read_the_same_image(tmp_path, layout):
    layer = tiny_layer(tmp_path / "l")
    top = [Entry("etc/removed", whiteout=True), Entry("opt", whiteout="opaque")]
    path = make_archive(tmp_path / f"{layout}.tar", [layer, top], layout=layout,
                        env={"PATH": "/bin", "A": "b=c"}, workdir="/code", cmd=["python3"],
                        tag="team/detectron2:v1", config={"Entrypoint": ["/bin/sh", "-c"]})
    archive = read_archive(path)
    assert archive.layout == layout and archive.has_manifest_json
    assert archive.env == {"PATH": "/bin", "A": "b=c"}
    assert archive.workdir == "/code" and archive.cmd == ["python3"]
    assert archive.entrypoint == ["/bin/sh", "-c"] and archive.architecture == "amd64"
    assert archive.repo_tags == ("team/detectron2:v1",)
    assert len(archive.layer_members) == 2 and len(archive.diff_ids) == 2
    assert archive.config_digest.startswith("sha256:") and len(archive.config_digest) == 71
    seen = []
    check_layers(archive, lambda done, total: seen.append((done, total)))
    assert seen and seen[-1][0] == seen[-1][1] > 0


def test_legacy_layout_members_look_like_docker(tmp_path):
    path = make_archive(tmp_path / "a.tar", [tiny_layer(tmp_path / "l")])
    names = names_in(path)
    config = next(n for n in names if n.endswith(".json") and "/" not in n
                  and n != "manifest.json")
    layer_id = next(n for n in names if n.endswith("/layer.tar")).split("/")[0]
    assert {f"{layer_id}/VERSION", f"{layer_id}/json", f"{layer_id}/layer.tar",
            "manifest.json", "repositories"} <= set(names)
    with tarfile.open(path) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
        config_bytes = tar.extractfile(config).read()
    assert manifest == [{"Config": config, "RepoTags": ["gw-test:latest"],
                         "Layers": [f"{layer_id}/layer.tar"]}]
    assert config == hashlib.sha256(config_bytes).hexdigest() + ".json"


def test_oci_layout_members_look_like_docker_25(tmp_path):
    path = make_archive(tmp_path / "a.tar", [tiny_layer(tmp_path / "l")], layout="docker-oci")
    names = names_in(path)
    assert {n.split("/")[0] for n in names} == OCI_TOP
    with tarfile.open(path) as tar:
        index = json.load(tar.extractfile("index.json"))
        manifest = json.load(tar.extractfile("manifest.json"))
    annotations = index["manifests"][0]["annotations"]
    assert annotations == {"io.containerd.image.name": "docker.io/library/gw-test:latest",
                           "org.opencontainers.image.ref.name": "latest"}
    assert all(p.startswith("blobs/sha256/") for p in [manifest[0]["Config"],
                                                       *manifest[0]["Layers"]])


def test_oci_archive_without_manifest_json_reads_index(tmp_path):
    path = make_archive(tmp_path / "a.tar", [tiny_layer(tmp_path / "l")], layout="docker-oci",
                        tag="localhost:5000/x/y:2", manifest_json=False)
    assert "manifest.json" not in names_in(path)
    archive = read_archive(path)
    assert not archive.has_manifest_json and archive.repo_tags == ("localhost:5000/x/y:2",)
    check_layers(archive)


def test_same_content_same_digest_and_bytes(tmp_path):
    layer = tiny_layer(tmp_path / "l")
    a = make_archive(tmp_path / "a.tar", [layer], layout="docker-legacy")
    b = make_archive(tmp_path / "b.tar", [layer], layout="docker-oci", tag="x:y")
    c = make_archive(tmp_path / "c.tar", [layer], layout="docker-legacy")
    assert read_archive(a).config_digest == read_archive(b).config_digest
    assert a.read_bytes() == c.read_bytes()


def test_writer_skips_devices_and_kernel_trees(tmp_path):
    root = tiny_layer(tmp_path / "root")
    for name in ("proc", "sys", "dev"):
        (root / name).mkdir()
        (root / name / "inside").write_text("x")
    os.mkfifo(root / "fifo")
    path = make_archive(tmp_path / "a.tar", [root])
    archive = read_archive(path)
    with tarfile.open(path) as outer, \
            tarfile.open(fileobj=outer.extractfile(archive.layer_members[0])) as layer:
        names = set(layer.getnames())
        owners = {(m.uid, m.gid, m.uname) for m in layer.getmembers()}
    assert {"proc", "sys", "dev", "fifo", "bin/tool"} <= names
    assert not any(n.startswith(("proc/", "sys/", "dev/")) for n in names)
    assert owners == {(0, 0, "")}


# -- hostile and broken archives ----------------------------------------------------------

def tar_bytes(entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def entry(name, kind=tarfile.REGTYPE, linkname="", data=b"x"):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    if kind == tarfile.REGTYPE:
        info.size = len(data)
        return info, data
    return info, None


def write_outer(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def archive_of(tmp_path: Path, layers: list[bytes], diff_ids: list[str] | None = None,
               **config_extra) -> Path:
    """A legacy archive holding ``layers`` (raw layer bytes) with a matching config."""
    if diff_ids is None:
        plain = [gzip.decompress(b) if b[:2] == b"\x1f\x8b" else b for b in layers]
        diff_ids = ["sha256:" + hashlib.sha256(b).hexdigest() for b in plain]
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids},
                         **config_extra}).encode()
    names = [f"l{i}/layer.tar" for i in range(len(layers))]
    manifest = json.dumps([{"Config": "config.json", "RepoTags": ["x:y"],
                            "Layers": names}]).encode()
    return write_outer(tmp_path / "img.tar", {"config.json": config,
                                              **dict(zip(names, layers, strict=False)),
                                              "manifest.json": manifest})


@pytest.mark.parametrize("entries,message", [
    ([entry("../etc/passwd")], r"'\.\./etc/passwd' leaves the image"),
    ([entry("a/../../x")], "leaves the image"),
    ([entry("ok/..")], "leaves the image"),
    ([entry("/etc/passwd")], "absolute"),
    ([entry("link", tarfile.SYMTYPE, "../../../etc")], "climbs out"),
    ([entry("d/link", tarfile.SYMTYPE, "../../x")], "climbs out"),
    ([entry("a/b/link", tarfile.SYMTYPE, "../../..")], "climbs out"),
    ([entry("hard", tarfile.LNKTYPE, "../etc/shadow")], "hardlink"),
    ([entry("hard", tarfile.LNKTYPE, "/etc/shadow")], "hardlink"),
    ([entry("dev/sda", tarfile.BLKTYPE)], "device node"),
    ([entry("dev/null", tarfile.CHRTYPE)], "device node"),
    ([entry("etc/.wh...")], "whiteout of"),
])
def test_hostile_layers_refused(tmp_path, entries, message):
    archive = read_archive(archive_of(tmp_path, [tar_bytes(entries)]))
    with pytest.raises(ImageArchiveError, match=message) as error:
        check_layers(archive)
    text = str(error.value)
    assert "\n" not in text and "img.tar: layer l0/layer.tar" in text
    assert isinstance(error.value, InvalidInput) and error.value.exit_code == 2


def test_hostile_entry_in_gzip_layer_refused(tmp_path):
    layer = gzip.compress(tar_bytes([entry("ok"), entry("../../escape")]))
    with pytest.raises(ImageArchiveError, match="leaves the image"):
        check_layers(read_archive(archive_of(tmp_path, [layer])))


def test_normal_links_and_whiteouts_accepted(tmp_path):
    entries = [entry("usr/bin/python3.11"),
               entry("usr/bin/python3", tarfile.SYMTYPE, "python3.11"),
               entry("bin", tarfile.SYMTYPE, "usr/bin"),
               entry("usr/lib/x/link", tarfile.SYMTYPE, "../../bin/python3"),
               entry("etc/alt", tarfile.SYMTYPE, "/usr/bin/python3"),
               entry("etc/abs", tarfile.SYMTYPE, "/../../../../etc/shadow"),
               entry("usr/bin/py", tarfile.LNKTYPE, "usr/bin/python3.11"),
               entry("etc/.wh.removed"), entry("opt/.wh..wh..opq")]
    plain = tar_bytes(entries)
    check_layers(read_archive(archive_of(tmp_path, [plain, gzip.compress(plain)])))


def test_layer_not_matching_diff_id_is_corrupt(tmp_path):
    layer = tar_bytes([entry("a")])
    path = archive_of(tmp_path, [layer], diff_ids=["sha256:" + "0" * 64])
    with pytest.raises(ImageArchiveError, match="does not match the config's diff_id"):
        check_layers(read_archive(path))


def test_corrupt_gzip_layer(tmp_path):
    layer = bytearray(gzip.compress(tar_bytes([entry("a", data=os.urandom(50000))])))
    layer[len(layer) // 2] ^= 0xFF
    path = archive_of(tmp_path, [bytes(layer)], diff_ids=["sha256:" + "0" * 64])
    with pytest.raises(ImageArchiveError, match=r"truncated or corrupt|does not match"):
        check_layers(read_archive(path))


def test_garbage_layer(tmp_path):
    path = archive_of(tmp_path, [b"not a tar at all" * 64], diff_ids=["sha256:" + "0" * 64])
    with pytest.raises(ImageArchiveError, match=r"layer l0/layer.tar is truncated or corrupt"):
        check_layers(read_archive(path))


def test_not_a_tar(tmp_path):
    path = tmp_path / "x.tar"
    path.write_bytes(b"this is not a tar archive at all" * 100)
    with pytest.raises(ImageArchiveError, match=r"x\.tar: not a tar archive"):
        read_archive(path)


def test_missing_file(tmp_path):
    with pytest.raises(ImageArchiveError, match="no such file"):
        read_archive(tmp_path / "nope.tar")


def test_gzip_archive_named(tmp_path):
    path = tmp_path / "x.tar.gz"
    path.write_bytes(b"\x1f\x8b" + b"\0" * 100)
    with pytest.raises(ImageArchiveError, match="gzip"):
        read_archive(path)


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_truncated_archive(tmp_path, keep):
    layer = tiny_layer(tmp_path / "l")
    (layer / "big").write_bytes(os.urandom(300000))
    good = make_archive(tmp_path / "a.tar", [layer])
    cut = tmp_path / "cut.tar"
    cut.write_bytes(good.read_bytes()[:int(good.stat().st_size * keep)])
    with pytest.raises(ImageArchiveError, match=r"truncated|corrupt|missing"):
        check_layers(read_archive(cut))


def test_no_manifest(tmp_path):
    path = write_outer(tmp_path / "x.tar", {"hello.txt": b"hi"})
    with pytest.raises(ImageArchiveError, match=r"no manifest.json or index.json"):
        read_archive(path)


def test_manifest_names_missing_layer(tmp_path):
    config = json.dumps({"config": {}, "rootfs": {"diff_ids": ["sha256:" + "1" * 64]}})
    manifest = json.dumps([{"Config": "c.json", "Layers": ["gone/layer.tar"]}]).encode()
    path = write_outer(tmp_path / "x.tar", {"c.json": config.encode(), "manifest.json": manifest})
    with pytest.raises(ImageArchiveError, match=r"x.tar: layer 'gone/layer.tar' is missing"):
        read_archive(path)


def test_layer_count_differs_from_diff_ids(tmp_path):
    path = archive_of(tmp_path, [tar_bytes([entry("a")])], diff_ids=[])
    archive = read_archive(path)
    with pytest.raises(ImageArchiveError, match=r"lists no layer digests .* for 1 layers"):
        check_layers(archive)


def test_unsafe_entries_are_named_before_missing_diff_ids(tmp_path):
    path = archive_of(tmp_path, [tar_bytes([entry("../../x")])], diff_ids=[])
    with pytest.raises(ImageArchiveError, match="leaves the image"):
        check_layers(read_archive(path))


def test_config_digest_mismatch(tmp_path):
    config = json.dumps({"config": {}}).encode()
    name = "ab" * 32 + ".json"
    manifest = json.dumps([{"Config": name, "Layers": ["l/layer.tar"]}]).encode()
    path = write_outer(tmp_path / "x.tar", {name: config, "l/layer.tar": tar_bytes([]),
                                             "manifest.json": manifest})
    with pytest.raises(ImageArchiveError, match="does not match its digest"):
        read_archive(path)


def test_two_images_refused(tmp_path):
    one = {"Config": "c.json", "Layers": []}
    path = write_outer(tmp_path / "x.tar", {"manifest.json": json.dumps([one, one]).encode()})
    with pytest.raises(ImageArchiveError, match="holds 2 images"):
        read_archive(path)


def test_windows_image_refused(tmp_path):
    path = archive_of(tmp_path, [tar_bytes([entry("a")])], os="windows")
    with pytest.raises(ImageArchiveError, match="only linux images"):
        read_archive(path)


def test_summary_defaults():
    assert image_config_summary({}) == {"env": {}, "workdir": "/", "cmd": [], "entrypoint": [],
                                        "architecture": "amd64"}
    summary = image_config_summary({"architecture": "arm64", "config": {
        "Env": ["A=1", "B=x=y", "BROKEN"], "WorkingDir": "/w", "Cmd": ["a"]}})
    assert summary["env"] == {"A": "1", "B": "x=y"} and summary["architecture"] == "arm64"
