"""The SIF container format: reading where the root file system lies, writing with siftool.

A SIF is a global header, a table of descriptors and the data objects they describe
(https://github.com/apptainer/sif). The runtime needs one number from it: the byte offset
of the primary system partition (the squashfs root), for ``squashfuse -o offset=``.
Reading it here avoids running a tool at job start.
"""

from __future__ import annotations

import errno
import os
import struct
import time
import uuid
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
# The layout siftool writes (sif v2 defaults): 48 descriptors from 4096, the first data
# object (the partition) page-aligned at 32768, later objects unaligned.
DESCRIPTORS_TOTAL, DESCRIPTORS_OFFSET, PARTITION_OFFSET = 48, 4096, 32768
GROUP_ID = 0xF0000001            # sif's group mask | group 1
FALLOC_FL_INSERT_RANGE = 0x20
SQUASHFS_MAGIC = b"hsqs"


class SifFormatError(GatewayError):
    """A file is not a SIF, or has no squashfs primary system partition."""


def sif_arch_code(architecture: str) -> int:
    """SIF's code for an image architecture (``amd64`` -> 2); an unknown one is refused."""
    if architecture not in SIF_ARCH:
        raise SifFormatError(f"image architecture {architecture!r} has no SIF code "
                             f"(known: {', '.join(SIF_ARCH)})")
    return SIF_ARCH[architecture]


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
    code = sif_arch_code(architecture)
    _siftool("new", str(dest))
    _siftool("add", "--datatype", "4", "--parttype", str(PART_PRIMSYS), "--partfs",
             str(FS_SQUASH), "--partarch", str(code), "--groupid", "1",
             str(dest), str(squashfs))
    if config_json is not None:
        _siftool("add", "--datatype", "6", "--groupid", "1", "--filename", "image-config.json",
                 str(dest), str(config_json))


def _insert_range(path: Path, length: int) -> bool:
    """Insert ``length`` zero bytes at the start of ``path`` without copying it
    (``fallocate(FALLOC_FL_INSERT_RANGE)``: ext4, XFS); False where the file system
    cannot."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    fd = os.open(path, os.O_RDWR)
    try:
        if libc.fallocate(fd, FALLOC_FL_INSERT_RANGE, 0, length) == 0:
            return True
        code = ctypes.get_errno()
    finally:
        os.close(fd)
    if code in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS, errno.EPERM):
        return False
    raise OSError(code, f"fallocate --insert-range {path}: {os.strerror(code)}")


def sif_head(partition_size: int, architecture: str, config_size: int, *,
             created: int | None = None, image_id: bytes | None = None) -> bytes:
    """The first :data:`PARTITION_OFFSET` bytes of the SIF siftool makes of a squashfs of
    ``partition_size`` bytes followed by a ``config_size``-byte image config: header and
    descriptor table, as ``siftool new`` and two ``siftool add`` write them."""
    now = int(time.time()) if created is None else created
    arch = f"{sif_arch_code(architecture):02d}".encode() + b"\0"
    table_end = DESCRIPTORS_OFFSET + DESCRIPTORS_TOTAL * DESCRIPTOR.size
    padded = partition_size + PARTITION_OFFSET - table_end
    partition = DESCRIPTOR.pack(DATA_PARTITION, 1, 1, GROUP_ID, 0, PARTITION_OFFSET,
                                partition_size, padded, now, now, 0, 0, b"",
                                PARTITION.pack(FS_SQUASH, PART_PRIMSYS, arch))
    config = DESCRIPTOR.pack(DATA_GENERIC_JSON, 1, 2, GROUP_ID, 0,
                             PARTITION_OFFSET + partition_size, config_size, config_size, now,
                             now, 0, 0, b"image-config.json", b"")
    header = HEADER.pack(b"", MAGIC, b"01\0", arch, image_id or uuid.uuid4().bytes, now, now,
                         DESCRIPTORS_TOTAL - 2, DESCRIPTORS_TOTAL, DESCRIPTORS_OFFSET,
                         DESCRIPTORS_TOTAL * DESCRIPTOR.size, table_end, padded + config_size)
    head = bytearray(PARTITION_OFFSET)
    head[:HEADER.size] = header
    head[DESCRIPTORS_OFFSET:DESCRIPTORS_OFFSET + 2 * DESCRIPTOR.size] = partition + config
    return bytes(head)


def wrap_in_place(squashfs: Path, architecture: str, config_json: bytes) -> bool:
    """Turn the file ``squashfs`` into a SIF, with it as the primary system partition and
    ``config_json`` as the image config, without a second copy on disk: the header is
    inserted in front of the partition. The bytes are those :func:`write_sif` makes
    (but for the creation time and ID). False (the file untouched) where the file system
    cannot insert a range; then :func:`write_sif` copies. A file that does not start as
    a SquashFS does is refused (:class:`SifFormatError`)."""
    with squashfs.open("rb") as handle:
        if handle.read(4) != SQUASHFS_MAGIC:
            raise SifFormatError(f"{squashfs.name}: not a SquashFS image; its writer made "
                                 "something else")
    size = squashfs.stat().st_size
    head = sif_head(size, architecture, len(config_json))
    if not _insert_range(squashfs, PARTITION_OFFSET):
        return False
    with squashfs.open("r+b") as handle:
        handle.write(head)
        handle.seek(PARTITION_OFFSET + size)
        handle.write(config_json)
        handle.truncate()
    return True


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


if __name__ == "__main__":   # `python -m containers.sif offset SIF`: a job whose image was
    import sys  # built after its script was written reads the offset so

    if len(sys.argv) != 3 or sys.argv[1] != "offset":
        sys.exit("usage: python -m containers.sif offset SIF")
    print(sif_partition(Path(sys.argv[2]))[0])
