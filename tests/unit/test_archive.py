"""Reading docker-save archives, and refusing hostile or broken ones with a clear error."""

import io
import json
import tarfile

import pytest

from containers.archive import ImageArchiveError, check_layers, read_archive
from tests.support.images import make_archive


def tiny_layer(root):
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "tool").write_text("#!/bin/sh\n")
    return root


@pytest.mark.parametrize("layout", ["docker-legacy", "docker-oci"])
def test_both_layouts_read_the_same_image(tmp_path, layout):
    layer = tiny_layer(tmp_path / "l")
    archive = read_archive(make_archive(tmp_path / f"{layout}.tar", [layer], layout=layout,
                                        env={"PATH": "/bin", "A": "b=c"}, workdir="/code",
                                        cmd=["python3"]))
    assert archive.layout == layout
    assert archive.env == {"PATH": "/bin", "A": "b=c"}
    assert archive.workdir == "/code" and archive.cmd == ["python3"]
    assert len(archive.layer_members) == 1
    check_layers(archive)


def test_same_content_same_digest(tmp_path):
    layer = tiny_layer(tmp_path / "l")
    a = read_archive(make_archive(tmp_path / "a.tar", [layer], layout="docker-legacy"))
    b = read_archive(make_archive(tmp_path / "b.tar", [layer], layout="docker-oci", tag="x:y"))
    assert a.config_digest == b.config_digest


def write_outer(path, members: dict[str, bytes]):
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def layer_with(entries) -> bytes:
    """A layer tar from TarInfo-producing callables."""
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


def archive_with_layer(tmp_path, layer_bytes: bytes):
    config = json.dumps({"architecture": "amd64", "config": {}}).encode()
    manifest = json.dumps([{"Config": "config.json", "RepoTags": ["x:y"],
                            "Layers": ["l1/layer.tar"]}]).encode()
    return write_outer(tmp_path / "img.tar", {"config.json": config, "l1/layer.tar": layer_bytes,
                                              "manifest.json": manifest})


@pytest.mark.parametrize("entries,message", [
    ([entry("../etc/passwd")], "leaves the image"),
    ([entry("a/../../x")], "leaves the image"),
    ([entry("/etc/passwd")], "absolute path"),
    ([entry("link", tarfile.SYMTYPE, "../../../etc")], "climbs out"),
    ([entry("d/link", tarfile.SYMTYPE, "../../x")], "climbs out"),
    ([entry("hard", tarfile.LNKTYPE, "../etc/shadow")], "hardlink"),
    ([entry("hard", tarfile.LNKTYPE, "/etc/shadow")], "hardlink"),
    ([entry("dev/sda", tarfile.BLKTYPE)], "device node"),
    ([entry("dev/null", tarfile.CHRTYPE)], "device node"),
])
def test_hostile_layers_refused(tmp_path, entries, message):
    archive = read_archive(archive_with_layer(tmp_path, layer_with(entries)))
    with pytest.raises(ImageArchiveError, match=message):
        check_layers(archive)


def test_normal_links_accepted(tmp_path):
    entries = [entry("usr/bin/python3.11"), entry("usr/bin/python3", tarfile.SYMTYPE,
                                                   "python3.11"),
               entry("bin", tarfile.SYMTYPE, "usr/bin"),
               entry("etc/alt", tarfile.SYMTYPE, "/usr/bin/python3"),
               entry("usr/bin/py", tarfile.LNKTYPE, "usr/bin/python3.11"),
               entry("etc/.wh.removed"), entry("opt/.wh..wh..opq")]
    check_layers(read_archive(archive_with_layer(tmp_path, layer_with(entries))))


def test_not_a_tar(tmp_path):
    path = tmp_path / "x.tar"
    path.write_bytes(b"this is not a tar archive at all" * 100)
    with pytest.raises(ImageArchiveError, match="not a tar"):
        read_archive(path)


def test_gzip_named(tmp_path):
    path = tmp_path / "x.tar.gz"
    path.write_bytes(b"\x1f\x8b" + b"\0" * 100)
    with pytest.raises(ImageArchiveError, match="gzip"):
        read_archive(path)


def test_truncated(tmp_path):
    layer = tiny_layer(tmp_path / "l")
    (layer / "big").write_bytes(b"y" * 200000)
    good = make_archive(tmp_path / "a.tar", [layer])
    cut = tmp_path / "cut.tar"
    cut.write_bytes(good.read_bytes()[:120000])
    with pytest.raises(ImageArchiveError, match="truncated|corrupt|missing"):
        archive = read_archive(cut)
        check_layers(archive)


def test_no_manifest(tmp_path):
    path = write_outer(tmp_path / "x.tar", {"hello.txt": b"hi"})
    with pytest.raises(ImageArchiveError, match="no manifest.json or index.json"):
        read_archive(path)


def test_manifest_names_missing_layer(tmp_path):
    config = json.dumps({"config": {}}).encode()
    manifest = json.dumps([{"Config": "c.json", "Layers": ["gone/layer.tar"]}]).encode()
    path = write_outer(tmp_path / "x.tar", {"c.json": config, "manifest.json": manifest})
    with pytest.raises(ImageArchiveError, match="layer 'gone/layer.tar' is missing"):
        read_archive(path)


def test_config_digest_mismatch(tmp_path):
    config = json.dumps({"config": {}}).encode()
    name = "ab" * 32 + ".json"
    manifest = json.dumps([{"Config": name, "Layers": ["l/layer.tar"]}]).encode()
    path = write_outer(tmp_path / "x.tar", {name: config, "l/layer.tar": layer_with([]),
                                             "manifest.json": manifest})
    with pytest.raises(ImageArchiveError, match="does not match its digest"):
        read_archive(path)
