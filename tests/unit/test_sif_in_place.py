"""The SIF header gw writes in place is the one siftool writes (but for its ID and times)."""

from __future__ import annotations

import shutil
import struct
import subprocess

import pytest

from containers.sif import (
    DESCRIPTOR,
    DESCRIPTORS_OFFSET,
    HEADER,
    SifFormatError,
    sif_partition,
    wrap_in_place,
    write_sif,
)

TIMES = struct.calcsize("<iBIIIqqq")   # a descriptor's created/modified times start here


def normalised(data: bytes) -> bytes:
    """``data`` with the header's ID and times and both descriptors' times zeroed."""
    out = bytearray(data)
    out[48:64] = bytes(16)                                  # the image ID
    out[64:80] = bytes(16)                                  # created, modified
    for index in range(2):
        start = DESCRIPTORS_OFFSET + index * DESCRIPTOR.size + TIMES
        out[start:start + 16] = bytes(16)
    return bytes(out)


@pytest.mark.parametrize("pad", [True, False])
def test_in_place_sif_is_siftools_byte_for_byte(tmp_path, pad):
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "a" / "f").write_text("hello\n")
    squashfs = tmp_path / "fs.sqfs"
    subprocess.run(["mksquashfs", str(root), str(squashfs), "-quiet", "-noappend",
                    *([] if pad else ["-nopad"])], check=True, capture_output=True)
    config = b'{"architecture":"amd64"}'
    (tmp_path / "config.json").write_bytes(config)
    reference = tmp_path / "ref.sif"
    write_sif(reference, squashfs, "amd64", tmp_path / "config.json")
    ours = tmp_path / "ours.sif"
    shutil.copy(squashfs, ours)
    if not wrap_in_place(ours, "amd64", config):
        pytest.skip("this file system cannot insert a range")
    assert normalised(ours.read_bytes()) == normalised(reference.read_bytes())
    assert sif_partition(ours) == sif_partition(reference)
    assert HEADER.unpack(ours.read_bytes()[:HEADER.size])[1] == b"SIF_MAGIC\0"
    listing = subprocess.run(["siftool", "list", str(ours)], capture_output=True, text=True,
                             check=True).stdout
    assert "Squashfs/*System/amd64" in listing and "JSON.Generic" in listing


def test_a_file_that_is_no_squashfs_is_refused_untouched(tmp_path):
    bogus = tmp_path / "x.sqfs"
    bogus.write_bytes(b"not a file system" * 300)
    with pytest.raises(SifFormatError, match="not a SquashFS"):
        wrap_in_place(bogus, "amd64", b"{}")
    assert bogus.read_bytes() == b"not a file system" * 300
