"""The SIF container format: reading where the root file system lies, writing with siftool.

A SIF is a global header, a table of descriptors and the data objects they describe
(https://github.com/apptainer/sif). The runtime needs one number from it: the byte offset
of the primary system partition (the squashfs root), for ``squashfuse -o offset=``.
Reading it here avoids running a tool at job start.
"""

from __future__ import annotations

import struct
from pathlib import Path

from gateway.common.errors import ContainerToolError, GatewayError
from gateway.common.process import run_command

# Little-endian and packed, as Go's encoding/binary writes the sif v2 structs.
HEADER = struct.Struct("<32s10s3s3s16s8q")    # launch, magic, version, arch, uuid, 8 int64
DESCRIPTOR = struct.Struct("<iBIIIqqqqqqq128s384s")
PARTITION = struct.Struct("<ii3s")             # fs type, partition type, arch
MAGIC = b"SIF_MAGIC\0"
DATA_PARTITION, DATA_GENERIC_JSON = 0x4004, 0x4006
FS_SQUASH, PART_PRIMSYS = 1, 2
# siftool's --partarch codes (sif's hdrArch* values).
SIF_ARCH = {"386": 1, "amd64": 2, "arm": 3, "arm64": 4, "ppc64": 5, "ppc64le": 6, "mips": 7,
            "mipsle": 8, "mips64": 9, "mips64le": 10, "s390x": 11, "riscv64": 12}
TOOL_TIMEOUT = 3600


class SifFormatError(GatewayError):
    """A file is not a SIF, or has no squashfs primary system partition."""


def sif_partition(path: Path) -> tuple[int, int]:
    """(offset, size) in bytes of the SIF's squashfs primary system partition."""
    with open(path, "rb") as handle:
        head = handle.read(HEADER.size)
        if len(head) < HEADER.size or HEADER.unpack(head)[1] != MAGIC:
            raise SifFormatError(f"{path}: not a SIF file")
        *_fixed, _ctime, _mtime, _free, total, desc_offset, _desc_size, _doff, _dsize = \
            HEADER.unpack(head)
        handle.seek(desc_offset)
        table = handle.read(total * DESCRIPTOR.size)
    if len(table) != total * DESCRIPTOR.size:
        raise SifFormatError(f"{path}: truncated SIF descriptor table")
    for index in range(total):
        (datatype, used, _id, _group, _link, offset, size, *_rest, extra) = \
            DESCRIPTOR.unpack_from(table, index * DESCRIPTOR.size)
        if used and datatype == DATA_PARTITION:
            fstype, parttype, _arch = PARTITION.unpack_from(extra)
            if fstype == FS_SQUASH and parttype == PART_PRIMSYS:
                return offset, size
    raise SifFormatError(f"{path}: no squashfs primary system partition")


def _siftool(*args: str) -> None:
    run_command(["siftool", *args], timeout=TOOL_TIMEOUT, error_type=ContainerToolError,
                what=f"siftool {args[0]}")


def write_sif(dest: Path, squashfs: Path, architecture: str,
              config_json: Path | None = None) -> None:
    """Create the SIF ``dest`` with ``squashfs`` as its primary system partition.

    ``config_json`` (the image config) is added as a GenericJSON object in the same group.
    """
    if architecture not in SIF_ARCH:
        raise SifFormatError(f"image architecture {architecture!r} has no SIF code "
                             f"(known: {', '.join(SIF_ARCH)})")
    _siftool("new", str(dest))
    _siftool("add", "--datatype", "4", "--parttype", str(PART_PRIMSYS), "--partfs",
             str(FS_SQUASH), "--partarch", str(SIF_ARCH[architecture]), "--groupid", "1",
             str(dest), str(squashfs))
    if config_json is not None:
        _siftool("add", "--datatype", "6", "--groupid", "1", "--filename", "image-config.json",
                 str(dest), str(config_json))


def find_in_sif(sif: Path, partition_offset: int, paths: list[str]) -> list[str]:
    """Which of ``paths`` (absolute, inside the image) the SIF's squashfs partition holds,
    read from its directory table (``unsquashfs -l``: milliseconds, nothing extracted).
    A path may hold ``*`` and ``?`` wildcards: it counts when anything matches it."""
    import fnmatch

    argv = ["unsquashfs", "-o", str(int(partition_offset)), "-l", "-d", "", str(sif), *paths]
    listed = run_command(argv, timeout=60, error_type=ContainerToolError,
                         what="unsquashfs").stdout.splitlines()
    present = set(listed)
    return [p for p in paths
            if p in present or (any(c in p for c in "*?[") and fnmatch.filter(listed, p))]


def first_line_in_sif(sif: Path, partition_offset: int, path: str) -> str:
    """The first line of the regular file ``path`` inside the image (a script's shebang),
    or "" when it is no readable text file (``unsquashfs -cat``: nothing extracted)."""
    argv = ["unsquashfs", "-o", str(int(partition_offset)), "-cat", str(sif), path]
    try:
        out = run_command(argv, timeout=60, error_type=ContainerToolError,
                          what="unsquashfs").stdout
    except (ContainerToolError, UnicodeDecodeError):
        return ""
    return out.split("\n", 1)[0]
