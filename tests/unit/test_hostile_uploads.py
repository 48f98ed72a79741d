"""Hostile uploads, by name: each is refused with one line naming the member, and
nothing is written anywhere (image layers are checked before anything is unpacked; a
push stages inside the home and leaves nothing behind)."""

from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from containers.archive import ImageArchiveError, check_layers, read_archive
from containers.layers import ImageLimits
from containers.rootfs import drop_setid_bits
from gateway.common.errors import InvalidInput
from tests.unit.test_archive import archive_of, entry, tar_bytes, write_outer
from tests.unit.test_stores import snapshot


def moded(name: str, mode: int, kind: bytes = tarfile.REGTYPE):
    info, data = entry(name, kind)
    info.mode = mode
    return info, data


def check(tmp_path: Path, *layers: list, limits: ImageLimits | None = None):
    return check_layers(read_archive(archive_of(tmp_path, [tar_bytes(e) for e in layers])),
                        limits=limits)


@pytest.mark.parametrize("entries,message", [
    ([entry("run/pipe", tarfile.FIFOTYPE)], r"'run/pipe' is a FIFO"),
    ([entry("etc/passwd"), entry("etc/passwd")], r"'etc/passwd' appears twice in the layer"),
    ([entry("etc/"), entry("./etc", tarfile.DIRTYPE), ], "appears twice"),
    ([entry("lnk", tarfile.SYMTYPE, "/etc"), entry("lnk/passwd")],
     r"'lnk/passwd' is written through the symlink 'lnk'"),
    ([entry("a", tarfile.SYMTYPE, "b"), entry("b", tarfile.SYMTYPE, "/etc"),
      entry("a/shadow")], "written through the symlink 'a'"),
    ([entry("d", tarfile.DIRTYPE), entry("d/up", tarfile.SYMTYPE, ".."),
      entry("d/up/d/x")], "written through the symlink 'd/up'"),
    ([entry("lnk", tarfile.SYMTYPE, "/etc"), entry("h", tarfile.LNKTYPE, "lnk/shadow")],
     r"'h' is a hardlink through the symlink 'lnk'"),
    ([entry("caf\udcff.txt")], r"'caf\\udcff.txt' has a name that is not valid UTF-8"),
])
def test_hostile_layer_entries(tmp_path, entries, message):
    with pytest.raises(ImageArchiveError, match=message) as error:
        check(tmp_path, entries)
    assert "\n" not in str(error.value) and "layer l0/layer.tar" in str(error.value)


def test_a_symlink_in_one_layer_and_a_file_through_it_in_the_next(tmp_path):
    with pytest.raises(ImageArchiveError,
                       match="'etc/cron/evil' is written through the symlink 'etc/cron'"):
        check(tmp_path, [entry("etc", tarfile.DIRTYPE), entry("etc/cron", tarfile.SYMTYPE,
                                                              "/host")],
              [entry("etc/cron/evil")])
    # A later layer that whites the link out (or replaces it) may put a directory there.
    (tmp_path / "ok1").mkdir()
    (tmp_path / "ok2").mkdir()
    check(tmp_path / "ok1", [entry("x", tarfile.SYMTYPE, "/etc")],
          [entry(".wh.x"), entry("x", tarfile.DIRTYPE), entry("x/file")])
    check(tmp_path / "ok2", [entry("d", tarfile.DIRTYPE), entry("d/x", tarfile.SYMTYPE, "/")],
          [entry("d/.wh..wh..opq"), entry("d/x", tarfile.DIRTYPE), entry("d/x/file")])


def test_names_may_repeat_across_layers(tmp_path):
    check(tmp_path, [entry("etc/motd")], [entry("etc/motd")])


def test_setuid_and_setgid_members_are_noted_and_the_sif_drops_the_bits(tmp_path):
    guard = check(tmp_path, [moded("usr/bin/passwd", 0o4755), moded("srv", 0o2775,
                                                                     tarfile.DIRTYPE),
                             moded("usr/bin/plain", 0o755)])
    assert guard.setid == ["usr/bin/passwd", "srv"]
    rootfs = tmp_path / "rootfs"
    (rootfs / "srv").mkdir(parents=True)
    (rootfs / "tool").write_text("x")
    os.chmod(rootfs / "tool", 0o6755)
    os.chmod(rootfs / "srv", 0o2775)
    os.symlink("tool", rootfs / "link")
    assert drop_setid_bits(rootfs) == 2
    assert stat.S_IMODE((rootfs / "tool").stat().st_mode) == 0o755
    assert stat.S_IMODE((rootfs / "srv").stat().st_mode) == 0o775


def test_members_beyond_the_limit_and_a_layer_bomb(tmp_path):
    with pytest.raises(ImageArchiveError, match=r"'big' makes the image larger than the "
                       r"limit of 1000 bytes"):
        check(tmp_path, [entry("small", data=b"x" * 600)], [entry("big", data=b"x" * 600)],
              limits=ImageLimits(max_bytes=1000))
    zeros = tar_bytes([entry("zeros", data=bytes(80 << 20))])
    (tmp_path / "bomb").mkdir()
    bomb = archive_of(tmp_path / "bomb", [gzip.compress(zeros, 9)])
    with pytest.raises(ImageArchiveError, match="'zeros' makes the layer expand more than 200 "
                       "times"):
        check_layers(read_archive(bomb))


def test_archive_with_a_member_twice_or_a_layer_named_twice(tmp_path):
    good = archive_of(tmp_path, [tar_bytes([entry("a")])])
    with tarfile.open(good) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    doubled = tmp_path / "doubled.tar"
    with tarfile.open(doubled, "w") as tar:
        for name, data in [*members.items(), ("manifest.json", b"[]")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(ImageArchiveError, match=r"member 'manifest.json' appears twice"):
        read_archive(doubled)
    layer = tar_bytes([entry("a")])
    with pytest.raises(ImageArchiveError, match=r"names the layer 'l0/layer.tar' twice"):
        read_archive(_manifest_naming_twice(tmp_path, layer))


def _manifest_naming_twice(tmp_path: Path, layer: bytes) -> Path:
    import hashlib
    import json

    diff = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [diff, diff]}}).encode()
    manifest = json.dumps([{"Config": "config.json", "RepoTags": ["x:y"],
                            "Layers": ["l0/layer.tar", "l0/layer.tar"]}]).encode()
    return write_outer(tmp_path / "twice.tar", {"config.json": config, "l0/layer.tar": layer,
                                                "manifest.json": manifest})


def test_manifest_that_is_not_json(tmp_path):
    path = write_outer(tmp_path / "x.tar", {"manifest.json": b"[{not json"})
    with pytest.raises(ImageArchiveError, match=r"manifest 'manifest.json' is not valid JSON"):
        read_archive(path)


# ---- algorithm and dataset pushes --------------------------------------------------------
def _zip_with(path: Path, name: str, mode: int) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ok.txt", "fine")
        info = zipfile.ZipInfo(name)
        info.external_attr = mode << 16
        zf.writestr(info, "#!/bin/sh\n")
    return path


@pytest.mark.parametrize("mode", [0o104755, 0o102755])
def test_zip_member_with_setuid_or_setgid(gw, tmp_path, mode):
    gw.layout.ensure()
    before = snapshot(gw)
    with pytest.raises(InvalidInput, match="'tool' has the setuid or setgid bit"):
        gw.store("algo").push(_zip_with(tmp_path / "s.zip", "tool", mode), "x", {})
    assert snapshot(gw) == before


def test_zip_with_a_name_that_is_not_utf8(gw, tmp_path):
    path = tmp_path / "u.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("caf\u00e9.txt", "x")  # stored with the UTF-8 flag
    data = path.read_bytes().replace("caf\u00e9".encode(), b"caf\xff\xa9")
    path.write_bytes(data)
    gw.layout.ensure()
    before = snapshot(gw)
    with pytest.raises(InvalidInput, match=r"member name b'caf\\xff\\xa9.txt' is not valid"):
        gw.store("algo").push(path, "x", {})
    assert snapshot(gw) == before


def test_zip_with_a_member_twice(gw, tmp_path):
    path = tmp_path / "d.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("train.py", "good")
        with pytest.warns(UserWarning, match="Duplicate name"):
            zf.writestr("train.py", "evil")
    with pytest.raises(InvalidInput, match=r"'train.py' appears twice"):
        gw.store("algo").push(path, "x", {})


def test_directory_with_setid_files_or_names_that_are_not_utf8(gw, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "ok.py").write_text("x")
    tool = src / "tool"
    tool.write_text("x")
    os.chmod(tool, 0o2755)
    gw.layout.ensure()
    before = snapshot(gw)
    with pytest.raises(InvalidInput, match="'tool' has the setuid or setgid bit"):
        gw.store("algo").push(src, "x", {})
    tool.unlink()
    bad = os.path.join(os.fsencode(src), b"bad\xffname")
    open(bad, "w").close()
    with pytest.raises(InvalidInput, match=r"name 'bad\\udcffname' is not valid UTF-8"):
        gw.store("algo").push(src, "x", {})
    os.unlink(bad)
    os.symlink(b"ok\xff.py", os.path.join(os.fsencode(src), b"link"))
    with pytest.raises(InvalidInput, match="is not valid UTF-8"):
        gw.store("algo").push(src, "x", {})
    assert snapshot(gw) == before
    # A setgid directory (a group project folder) is fine: versions make their own.
    os.unlink(os.path.join(os.fsencode(src), b"link"))
    os.chmod(src, 0o2775)
    version, _ = gw.store("algo").push(src, "x", {})
    assert not version.path.stat().st_mode & stat.S_ISGID
