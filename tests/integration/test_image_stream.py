"""The streaming converter against the previous one, on the real local Slurm.

One generated image with every kind of change a layer makes (files replaced, deleted by a
whiteout and by an opaque directory, a directory replaced by a file, hard links, one whose
file a later layer replaced, symlinks, modes, owners, setuid bits, an empty directory), as
plain and gzip layers, is converted by both (``image_builder`` stream and unpack, in two
homes), and a training job in each lists the tree it sees: the two listings must be the
same, and so must the SIFs' own listings (owners as stored).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
import zstandard

from containers.sif import sif_partition
from tests.conftest import gw_executable
from tests.integration.conftest import gw_ok
from tests.support.images import busybox_rootfs, slow_tar2sqfs
from tests.unit.test_archive import write_outer

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"

LISTING = r"""
set -u
find /t /etc /code /dataset /.singularity.d | sort | while read -r p; do
    # a directory's link count is left out: tar2sqfs counts every entry in it, not only
    # its subdirectories (more than mksquashfs; harmless: nothing undercounts)
    if [ -d "$p" ] && [ ! -L "$p" ]; then stat -c '%n %F %a' "$p"
    else stat -c '%n %F %a %s %h' "$p"; fi
    if [ -L "$p" ]; then echo "  -> $(readlink "$p")"
    elif [ -f "$p" ]; then echo "  md5 $(md5sum < "$p" | cut -d' ' -f1)"; fi
done > /model/tree.partial
mv /model/tree.partial /model/tree
"""


def entry(name, kind=tarfile.REGTYPE, data=b"", mode=None, linkname="", uid=0, gid=0):
    member = tarfile.TarInfo(name)
    member.type, member.linkname, member.uid, member.gid = kind, linkname, uid, gid
    member.mode = mode if mode is not None else (0o755 if kind == tarfile.DIRTYPE else 0o644)
    member.mtime = 1_700_000_000
    if kind == tarfile.REGTYPE:
        member.size = len(data)
    return member, (data if kind == tarfile.REGTYPE else None)


def tar_of(*entries) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member, data in entries:
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def dir_layer(root: Path) -> bytes:
    import sys

    sys.path.insert(0, str(SCRIPTS))
    from docker_archive import write_layer_tar

    out = root.parent / "base.tar"
    write_layer_tar(root, out, owner="root")
    return out.read_bytes()


D, L, S = tarfile.DIRTYPE, tarfile.LNKTYPE, tarfile.SYMTYPE
CHANGES = [
    tar_of(entry("t", D), entry("t/gone.txt", data=b"gone"), entry("t/opq", D),
           entry("t/opq/a", data=b"a"), entry("t/opq/b", data=b"b"),
           entry("t/data", D), entry("t/data/orig", data=b"old\n"),
           entry("t/data/link", L, linkname="t/data/orig"),
           entry("t/data/same", data=b"same\n"), entry("t/data/same2", L, linkname="t/data/same"),
           entry("t/bin", D), entry("t/bin/tool", data=b"#!/bin/sh\n", mode=0o4755),
           entry("t/owned", D, uid=1000, gid=1000, mode=0o750),
           entry("t/owned/f", data=b"mine", uid=1000, gid=100, mode=0o600),
           entry("t/tree", D), entry("t/tree/sub", D), entry("t/tree/sub/x", data=b"x"),
           entry("t/empty", D, mode=0o711), entry("t/rel", S, linkname="data/same"),
           entry("t/abs", S, linkname="/etc/passwd")),
    gzip.compress(tar_of(entry("t", D), entry("t/.wh.gone.txt"), entry("t/opq", D, mode=0o700),
                         entry("t/opq/.wh..wh..opq"), entry("t/opq/c", data=b"c"),
                         entry("t/data", D), entry("t/data/orig", data=b"new\n"),
                         entry("t/tree", data=b"now a file"),
                         entry("t/rel", data=b"now a file too"))),
    tar_of(entry("t", D), entry("t/late", D), entry("t/late/deep", D),
           entry("t/late/deep/file", data=b"late", mode=0o640)),
]


def write_image(path: Path, layers: list[bytes]) -> Path:
    plain = [gzip.decompress(b) if b[:2] == b"\x1f\x8b" else b for b in layers]
    if any(b[:4] == b"\x28\xb5\x2f\xfd" for b in layers):
        plain = [zstandard.ZstdDecompressor().decompressobj().decompress(b)
                 if b[:4] == b"\x28\xb5\x2f\xfd" else p for b, p in zip(layers, plain,
                                                                         strict=True)]
    config = json.dumps({"architecture": "amd64", "os": "linux",
                         "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": [
                             "sha256:" + hashlib.sha256(b).hexdigest() for b in plain]}}).encode()
    names = [f"l{i}/layer.tar" for i in range(len(layers))]
    manifest = json.dumps([{"Config": "config.json", "RepoTags": ["t:1"],
                            "Layers": names}]).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_outer(path, {"config.json": config, **dict(zip(names, layers, strict=True)),
                              "manifest.json": manifest})


@pytest.fixture(scope="module")
def image_archive(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("stream-image")
    return write_image(base / "changes.tar", [dir_layer(busybox_rootfs(base / "rootfs")),
                                              *CHANGES])


def listing_in_a_job(env: dict[str, str], archive: Path, base: Path) -> tuple[str, dict]:
    image = json.loads(gw_ok(env, "image", "import", str(archive), "--name", "t:1", "-q",
                             "--json"))
    algo = base / "algo"
    algo.mkdir(parents=True, exist_ok=True)
    (algo / "list.sh").write_text(LISTING)
    gw_ok(env, "algo", "push", str(algo), "--name", "lister", "-q")
    job = json.loads(gw_ok(env, "job", "submit", "--algo", "lister", "--image", "t:1",
                           "--wait", "--json", "--", "sh", "list.sh"))
    assert job["state"] == "COMPLETED", job
    return gw_ok(env, "model", "cat", job["model"], "tree"), image


def sif_listing(path: Path) -> list[str]:
    """``unsquashfs -lln`` of the SIF's partition: owners, modes, sizes as stored (no
    times; the metadata files the build writes carry its own time)."""
    offset, _size = sif_partition(path)
    out = subprocess.run(["unsquashfs", "-o", str(offset), "-lln", "-d", "", str(path)],
                         capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.splitlines():
        parts = line.split(None, 5)
        if len(parts) == 6:
            mode, owner, size, _date, _time, name = parts
            rows.append(f"{mode} {owner} {size if not mode.startswith('d') else '-'} {name}")
    return rows


def test_streamed_image_is_the_tree_the_unpacking_converter_made(image_archive, flow_home,
                                                                    tmp_path):
    streamed_env = {**flow_home, "GW_IMAGE_BUILDER": "stream"}
    unpacked_env = {**flow_home, "GW_HOME": str(tmp_path / "unpacked-home"),
                    "GW_IMAGE_BUILDER": "unpack"}
    streamed, streamed_image = listing_in_a_job(streamed_env, image_archive, tmp_path / "s")
    unpacked, unpacked_image = listing_in_a_job(unpacked_env, image_archive, tmp_path / "u")
    assert streamed_image["digest"] == unpacked_image["digest"]
    assert streamed == unpacked
    rows = dict(line.split(" ", 1) for line in streamed.splitlines() if line.startswith("/"))
    assert "/t/gone.txt" not in rows and "/t/opq/a" not in rows and "/t/opq/c" in rows
    assert rows["/t/tree"].startswith("regular file") and "/t/tree/sub" not in rows
    assert rows["/t/bin/tool"].split()[2] == "755"           # setuid cleared
    assert rows["/t/empty"] == "directory 711" and rows["/.singularity.d/env"] == "directory 755"
    lines = streamed.splitlines()
    link_md5 = lines[lines.index(next(x for x in lines if x.startswith("/t/data/link "))) + 1]
    assert link_md5 == "  md5 " + hashlib.md5(b"old\n").hexdigest()   # its file was replaced
    assert rows["/t/data/same"].endswith(" 2") and rows["/t/data/same2"].endswith(" 2")
    assert rows["/t/tree"].startswith("regular file 644 10 ")
    streamed_sif = sif_listing(Path(streamed_image["sif"]))
    assert streamed_sif == sif_listing(Path(unpacked_image["sif"]))
    owned = [r for r in streamed_sif if "/t/owned" in r]
    assert owned == ["drwxr-x--- 1000/1000 - /t/owned", "-rw------- 1000/100 4 /t/owned/f"]


def test_zstd_layers_are_read(flow_home, tmp_path):
    layers = [dir_layer(busybox_rootfs(tmp_path / "rootfs")),
              zstandard.ZstdCompressor().compress(tar_of(entry("t", D),
                                                         entry("t/z", data=b"zstd layer\n")))]
    archive = write_image(tmp_path / "z.tar", layers)
    env = {**flow_home, "GW_HOME": str(tmp_path / "zhome")}
    gw_ok(env, "image", "import", str(archive), "--name", "z:1", "-q")
    algo = tmp_path / "zalgo"
    algo.mkdir()
    (algo / "run.sh").write_text("cat /t/z > /model/out\n")
    gw_ok(env, "algo", "push", str(algo), "--name", "zcheck", "-q")
    job = json.loads(gw_ok(env, "job", "submit", "--algo", "zcheck", "--image", "z:1",
                           "--wait", "--json", "--", "sh", "run.sh"))
    assert gw_ok(env, "model", "cat", job["model"], "out") == "zstd layer\n"


def test_two_imports_of_one_archive_at_once_build_one_sif(image_archive, flow_home, tmp_path):
    # A tar2sqfs that notes each start and takes 2 s longer: the second import surely
    # arrives while the first one builds.
    starts = tmp_path / "starts"
    env = {**os.environ, **flow_home, "GW_HOME": str(tmp_path / "twice-home"),
           **slow_tar2sqfs(tmp_path / "bin", starts, 2)}
    procs = []
    for n in (1, 2):
        procs.append(subprocess.Popen([gw_executable(), "image", "import", str(image_archive),
                                       "--name", f"same:{n}", "-q", "--json"], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
        time.sleep(0.5)
    results = [proc.communicate(timeout=300) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], results
    imported = [json.loads(out) for out, _err in results]
    assert [i["converted"] for i in imported] == [True, False]
    assert imported[0]["digest"] == imported[1]["digest"]
    assert starts.read_text() == "start\n"                 # one conversion
    images = tmp_path / "twice-home" / "images"
    assert [p.name for p in images.iterdir()] == [Path(imported[0]["sif"]).name]   # no lock
