"""The streaming flattener: layers in, one tar out, with whiteouts applied as an overlay
would and what both runtimes need added (the SquashFS writer is not involved here)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import sys
import tarfile
import tempfile
import time

import pytest
import zstandard

from containers.archive import (
    ImageArchiveError,
    check_layers,
    layer_handles,
    pinned_archive,
    read_archive,
)
from containers.flatten import LayerTree, write_flat_ranges, write_flat_tar
from containers.layers import BackgroundDigests
from tests.unit.test_archive import write_outer

OLD, NEW = b"old contents\n", b"new contents\n"


def info(name, kind=tarfile.REGTYPE, data=b"", mode=None, linkname="", uid=0, gid=0,
         xattrs=None):
    member = tarfile.TarInfo(name)
    member.type, member.linkname, member.uid, member.gid = kind, linkname, uid, gid
    member.mode = mode if mode is not None else (0o755 if kind == tarfile.DIRTYPE else 0o644)
    if kind == tarfile.REGTYPE:
        member.size = len(data)
    if xattrs:
        member.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in xattrs.items()}
    return member, (data if kind == tarfile.REGTYPE else None)


def layer(*entries, compression="none") -> tuple[bytes, str]:
    """(stored bytes, diff_id) of a layer holding ``entries``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member, data in entries:
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
    plain = buffer.getvalue()
    diff_id = "sha256:" + hashlib.sha256(plain).hexdigest()
    if compression == "gzip":
        return gzip.compress(plain), diff_id
    if compression == "zstd":
        return zstandard.ZstdCompressor().compress(plain), diff_id
    return plain, diff_id


def image(tmp_path, layers, **config_extra):
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Env": ["PATH=/bin", "A=b c"], "Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": [d for _b, d in layers]},
                         **config_extra}).encode()
    names = [f"l{i}/layer.tar" for i in range(len(layers))]
    manifest = json.dumps([{"Config": "config.json", "RepoTags": ["x:y"],
                            "Layers": names}]).encode()
    return read_archive(write_outer(tmp_path / "img.tar", {
        "config.json": config, **{n: b for n, (b, _d) in zip(names, layers, strict=True)},
        "manifest.json": manifest}))


@pytest.fixture(params=["reread", "ranges"])
def second_read(request):
    """Each content test runs through both second reads: the one that checks and hashes
    every entry again, and the leased one that copies byte ranges (into a real file,
    as into tar2sqfs's pipe: by sendfile)."""
    return request.param


def flat_bytes(archive, second_read: str, out) -> None:
    """The flattened tar of ``archive`` written to ``out`` by ``second_read``."""
    if second_read == "reread":
        tree = LayerTree()
        check_layers(archive, tree=tree)
        tree.finish(archive.config)
        write_flat_tar(lambda: layer_handles(archive), tree, out)
        return
    with pinned_archive(archive) as pinned:
        assert pinned.unchanged is not None and pinned.unchanged()
        tree = LayerTree(keep_offsets=True)
        background = BackgroundDigests()
        try:
            check_layers(archive, tree=tree, handles=pinned.handles, background=background)
        finally:
            background.close()
        tree.finish(archive.config)
        write_flat_ranges(pinned.handles, tree, out)
        assert pinned.unchanged()


def flatten(archive, second_read: str = "reread") -> dict[str, tuple[tarfile.TarInfo, bytes]]:
    result = {}
    with tempfile.TemporaryFile() as out:
        flat_bytes(archive, second_read, out)
        out.seek(0)
        with tarfile.open(fileobj=out, mode="r:") as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                assert name not in result, f"{name} written twice"
                handle = tar.extractfile(member) if member.isfile() else None
                result[name] = (member, handle.read() if handle else b"")
    return result


LAYERS = [
    layer(info("etc", tarfile.DIRTYPE), info("etc/removed.txt", data=b"x"),
          info("etc/hosts", tarfile.SYMTYPE, linkname="/run/hosts"),
          info("opt", tarfile.DIRTYPE), info("opt/dir", tarfile.DIRTYPE),
          info("opt/dir/a", data=b"a"), info("opt/dir/b", data=b"b"),
          info("bin", tarfile.DIRTYPE), info("bin/tool", data=b"#!", mode=0o4755),
          info("data", tarfile.DIRTYPE), info("data/orig", data=OLD),
          info("data/link", tarfile.LNKTYPE, linkname="data/orig"),
          info("data/same", data=b"kept"), info("data/same2", tarfile.LNKTYPE,
                                                 linkname="data/same"),
          info("empty", tarfile.DIRTYPE, mode=0o700),
          info("lib", tarfile.SYMTYPE, linkname="usr/lib"),
          info("home", tarfile.DIRTYPE), info("home/u", tarfile.DIRTYPE, uid=1000),
          info("home/u/f", data=b"f", uid=1000, gid=100, xattrs={"user.k": "v"})),
    layer(info("etc/.wh.removed.txt"), info("opt/dir", tarfile.DIRTYPE, mode=0o750),
          info("opt/dir/.wh..wh..opq"), info("opt/dir/c", data=b"c"),
          info("data/orig", data=NEW), info("usr", tarfile.DIRTYPE),
          info("usr/local/bin/greet", data=b"hi", mode=0o755), compression="gzip"),
    layer(info("x", tarfile.DIRTYPE), info("x/y", data=b"y"), info(".wh.home"),
          compression="zstd"),
]


def test_layers_flatten_as_an_overlay_would(tmp_path, second_read):
    tree = flatten(image(tmp_path, LAYERS), second_read)
    assert "etc/removed.txt" not in tree                          # whiteout
    assert [n for n in tree if n.startswith("opt/dir/")] == ["opt/dir/c"]   # opaque
    assert tree["opt/dir"][0].mode == 0o750                       # the upper directory's
    assert not any(n == "home" or n.startswith("home/") for n in tree)      # whited-out dir
    assert tree["data/orig"][1] == NEW
    link, data = tree["data/link"]        # its file was replaced above: it keeps the old data
    assert link.isfile() and data == OLD
    assert tree["data/same2"][0].islnk() and tree["data/same2"][0].linkname == "data/same"
    assert tree["bin/tool"][0].mode == 0o755                      # setuid cleared
    assert tree["empty"][0].isdir() and tree["empty"][0].mode == 0o700
    assert tree["lib"][0].issym() and tree["lib"][0].linkname == "usr/lib"
    assert tree["x/y"][1] == b"y" and tree["usr/local/bin/greet"][1] == b"hi"   # gzip, zstd


def test_what_the_runtimes_need_is_added(tmp_path, second_read):
    tree = flatten(image(tmp_path, LAYERS, config={"Env": ["PATH=/bin", "A=b c"],
                                                   "Cmd": ["sh"], "Labels": {"k": "v"}}),
                   second_read)
    for directory in ("code", "dataset", "model", "proc", "dev", "tmp", "sys",
                      ".singularity.d/env", ".singularity.d/libs"):
        assert tree[directory][0].isdir(), directory
    hosts = tree["etc/hosts"][0]                # a symlink in the image: a file to bind over
    assert hosts.isfile() and tree["etc/passwd"][0].isfile()
    env = tree[".singularity.d/env/10-docker2singularity.sh"][1].decode()
    assert "export A='b c'" in env
    assert json.loads(tree[".singularity.d/labels.json"][1]) == {"k": "v"}
    assert tree["singularity"][0].linkname == ".singularity.d/runscript"


def test_owners_and_xattrs_come_through(tmp_path, second_read):
    one = [layer(info("home", tarfile.DIRTYPE), info("home/u", tarfile.DIRTYPE, uid=1000),
                 info("home/u/f", data=b"f", uid=1000, gid=100, xattrs={"user.k": "v"}))]
    tree = flatten(image(tmp_path, one), second_read)
    member = tree["home/u/f"][0]
    assert (member.uid, member.gid) == (1000, 100)
    assert member.pax_headers.get("SCHILY.xattr.user.k") == "v"


def test_unchanged_headers_are_copied_byte_for_byte(tmp_path, second_read):
    long_name = "deep/" + "n" * 150 + "/file"       # needs a PAX header of its own
    one = [layer(info("deep", tarfile.DIRTYPE), info(long_name, data=b"z"))]
    tree = flatten(image(tmp_path, one), second_read)
    assert tree[long_name][1] == b"z"


@pytest.mark.parametrize("entries,message", [
    ([info("code", tarfile.SYMTYPE, linkname="/etc")], "/code is a symlink"),
    ([info("model", data=b"x")], "/model is not a directory"),
    ([info("etc", tarfile.DIRTYPE), info("etc/hosts", tarfile.DIRTYPE)],
     "/etc/hosts is not a regular file"),
    ([info(".singularity.d", tarfile.DIRTYPE),
      info(".singularity.d/runscript", tarfile.DIRTYPE)], "runscript is a directory"),
    ([info("a", data=b"x"), info("b", tarfile.LNKTYPE, linkname="missing")],
     "hardlink to 'missing'"),
])
def test_images_the_runtimes_cannot_use_are_refused(tmp_path, entries, message):
    archive = image(tmp_path, [layer(*entries)])
    tree = LayerTree()
    with pytest.raises(ImageArchiveError, match=message):
        check_layers(archive, tree=tree)
        tree.finish(archive.config)


def test_a_file_under_a_lower_file_is_refused(tmp_path):
    archive = image(tmp_path, [layer(info("f", data=b"x")), layer(info("f/g", data=b"y"))])
    tree = LayerTree()
    with pytest.raises(ImageArchiveError, match="lies under 'f'"):
        check_layers(archive, tree=tree)
        tree.finish(archive.config)


def test_an_unfinished_tree_is_not_written(tmp_path):
    archive = image(tmp_path, [layer(info("f", data=b"x"))])
    with pytest.raises(ValueError):
        write_flat_tar(lambda: layer_handles(archive), LayerTree(), io.BytesIO())


def test_the_second_read_verifies_the_digests(tmp_path):
    archive = image(tmp_path, LAYERS)
    tree = LayerTree()
    check_layers(archive, tree=tree, digests=False)      # headers only: the build's first read
    tree.finish(archive.config)
    wrong = [(None, "sha256:" + "0" * 64)] * len(LAYERS)
    with pytest.raises(ImageArchiveError,
                       match=r"l0/layer\.tar does not match the config's diff_id"):
        write_flat_tar(lambda: layer_handles(archive), tree, io.BytesIO(), digests=wrong)
    right = [(None, d) for _b, d in LAYERS]
    write_flat_tar(lambda: layer_handles(archive), tree, io.BytesIO(), digests=right)


def test_a_corrupt_layer_leaves_no_sif(tmp_path):
    from containers.build import build_sif_from_archive

    plain, _diff_id = layer(info("f", data=b"x" * 5000))
    archive = image(tmp_path, [(plain, "sha256:" + "1" * 64)])
    images = tmp_path / "images"
    with pytest.raises(ImageArchiveError, match="does not match the config's diff_id"):
        build_sif_from_archive(archive, images / "x.sif", tmp_path / "work", builder="stream")
    assert not images.exists() or list(images.iterdir()) == []
    assert not (tmp_path / "work").exists()


def global_pax_layer() -> tuple[bytes, str]:
    """A layer whose tar starts with a global PAX header (every header after it is
    written anew: copied as it is, it would lose what the global header says)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT,
                      pax_headers={"comment": "global"}) as tar:
        for member, data in (info("g", tarfile.DIRTYPE), info("g/file", data=b"g" * 700)):
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
    plain = buffer.getvalue()
    return plain, "sha256:" + hashlib.sha256(plain).hexdigest()


def test_both_second_reads_write_the_same_bytes(tmp_path, monkeypatch):
    import containers.flatten

    monkeypatch.setattr(containers.flatten.time, "time", lambda: 1_700_000_000)
    archive = image(tmp_path, [*LAYERS, global_pax_layer(),
                               layer(info("data/orig", data=b"third"),       # rescued above
                                     info("late", tarfile.LNKTYPE, linkname="data/same"))])
    written = {}
    for second_read in ("reread", "ranges"):
        out = io.BytesIO()
        flat_bytes(archive, second_read, out)
        written[second_read] = out.getvalue()
    assert written["reread"] == written["ranges"]


def test_an_archive_opened_for_writing_during_the_build_leaves_no_sif(tmp_path, monkeypatch):
    """The leased build copies what the check read without reading it again: an archive
    someone opens for writing meanwhile is refused, never squashed."""
    import containers.build
    from containers.build import build_sif_from_archive

    archive = image(tmp_path, LAYERS)
    real = containers.build.write_flat_ranges
    writers = []

    def opened_meanwhile(*args, **kwargs):
        writers.append(subprocess.Popen([sys.executable, "-c", "import sys; "
                                         "open(sys.argv[1], 'r+b').close()",
                                         str(archive.path)]))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:        # its open breaks every lease at once
            with pinned_archive(archive) as probe:
                if probe.unchanged is None:
                    break
            time.sleep(0.01)
        real(*args, **kwargs)

    monkeypatch.setattr(containers.build, "write_flat_ranges", opened_meanwhile)
    images = tmp_path / "images"
    with pytest.raises(ImageArchiveError, match="opened for writing while it was converted"):
        build_sif_from_archive(archive, images / "x.sif", tmp_path / "work", builder="stream")
    assert writers and writers[0].wait(timeout=60) == 0     # let go when the build ended
    assert not images.exists() or list(images.iterdir()) == []
    assert not (tmp_path / "work").exists()
