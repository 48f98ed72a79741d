"""The tar entry reader: every header parses as tarfile parses it, raw headers are the
stream's own bytes, and damaged streams are errors naming the layer."""

from __future__ import annotations

import io
import tarfile

import pytest

from containers.tar_stream import FastTarInfo, tar_entries
from gateway.common.errors import InvalidInput

FIELDS = ("name", "mode", "uid", "gid", "size", "mtime", "type", "linkname", "uname",
          "gname", "devmajor", "devminor", "pax_headers")


def members() -> list[tuple[tarfile.TarInfo, bytes | None]]:
    made = []
    for name, kind, extra in [
        ("plain.txt", tarfile.REGTYPE, {}),
        ("dir/", tarfile.DIRTYPE, {}),
        ("a/" * 60 + "deep.txt", tarfile.REGTYPE, {}),              # ustar prefix or PAX
        ("link", tarfile.SYMTYPE, {"linkname": "t" * 150}),         # long link target
        ("hard", tarfile.LNKTYPE, {"linkname": "plain.txt"}),
        ("big-ids", tarfile.REGTYPE, {"uid": 3_000_000, "gid": 7}),   # PAX, or GNU base-256
        ("ünïcode", tarfile.REGTYPE, {"uname": "ü", "gname": "g"}),
        ("fifo", tarfile.FIFOTYPE, {}),
    ]:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.mtime = kind, 0o4755, 1_700_000_000
        for key, value in extra.items():
            setattr(info, key, value)
        data = b"x" * 700 if kind == tarfile.REGTYPE else None
        if data:
            info.size = len(data)
        made.append((info, data))
    return made


@pytest.mark.parametrize("format_", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT,
                                     tarfile.USTAR_FORMAT])
def test_entries_read_as_tarfile_reads_them(format_):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=format_) as tar:
        for info, data in members():
            if format_ == tarfile.USTAR_FORMAT and (len(info.linkname) > 100 or info.uid
                                                    > 0o7777777 or not info.name.isascii()):
                continue
            tar.addfile(info, io.BytesIO(data) if data else None)
    raw_stream = buffer.getvalue()
    with tarfile.open(fileobj=io.BytesIO(raw_stream), mode="r:") as tar:
        expected = tar.getmembers()
    seen = []
    for member, raw, data_bytes, reader in tar_entries(io.BytesIO(raw_stream), "layer"):
        assert raw == raw_stream[member.offset:member.offset_data]
        assert data_bytes == (700 + 324 if member.isreg() else 0)
        reader.skip(data_bytes)
        seen.append(member)
    assert [tuple(getattr(m, f) for f in FIELDS) for m in seen] == \
        [tuple(getattr(m, f) for f in FIELDS) for m in expected]


def test_the_fast_parser_gives_tarfiles_member():
    for info, _data in members():
        block = info.tobuf(tarfile.USTAR_FORMAT) if len(info.linkname) <= 100 and \
            info.name.isascii() and len(info.name) < 100 and info.uid <= 0o7777777 else None
        if block:
            fast = FastTarInfo.frombuf(block, "utf-8", "surrogateescape")
            slow = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
            assert [getattr(fast, f) for f in FIELDS] == [getattr(slow, f) for f in FIELDS]


@pytest.mark.parametrize("stream", [b"", b"garbage" * 100, b"\x01" * 512])
def test_damaged_streams_name_the_layer(stream):
    with pytest.raises(InvalidInput, match="layer7 is truncated or corrupt"):
        list(tar_entries(io.BytesIO(stream), "layer7"))


def test_a_checksum_error_is_tarfiles_message():
    info = tarfile.TarInfo("f")
    block = bytearray(info.tobuf(tarfile.USTAR_FORMAT))
    block[0:1] = b"g"                                   # the checksum no longer matches
    with pytest.raises(InvalidInput, match="bad checksum"):
        list(tar_entries(io.BytesIO(bytes(block) + bytes(1024)), "layer"))


def _with(block: bytes, start: int, field: bytes, *, checksum: str = "unsigned") -> bytes:
    """``block`` with ``field`` written at ``start`` and its checksum made right again
    (as most writers compute it, or as some old ones did: bytes summed as signed)."""
    changed = bytearray(block)
    changed[start:start + len(field)] = field
    changed[148:156] = b" " * 8
    total = sum(changed) if checksum == "unsigned" else sum(
        b - 256 if b > 127 else b for b in changed)
    changed[148:156] = b"%06o\0 " % (total & 0o7777777)
    return bytes(changed)


@pytest.mark.parametrize("start,field,checksum", [
    (100, b"   644 \0", "unsigned"),               # octal padded with spaces
    (124, b"1274\0\0\0\0\0\0\0\0", "unsigned"),      # short octal, NUL-padded
    (108, b"0\x00" + b"777\x00\x00\x00", "unsigned"),   # digits after a NUL: tarfile stops
    (0, b"\xff" * 99 + b"\0", "unsigned"),           # the largest byte sums, not UTF-8
    (0, b"\xff" * 99 + b"\0", "signed"),             # an old writer's signed checksum
    (345, b"some/prefix\0", "unsigned"),             # ustar prefix
    (156, tarfile.CHRTYPE, "unsigned"),              # a device: devmajor, devminor read
])
def test_odd_but_valid_headers_parse_as_tarfile_parses_them(start, field, checksum):
    info = tarfile.TarInfo("name")
    info.size, info.devmajor, info.devminor = 700, 8, 1
    block = _with(info.tobuf(tarfile.USTAR_FORMAT), start, field, checksum=checksum)
    if field == tarfile.CHRTYPE:
        block = _with(block, 329, b"0000010\0")
    slow = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
    fast = FastTarInfo.frombuf(block, "utf-8", "surrogateescape")
    assert [getattr(fast, f) for f in FIELDS] == [getattr(slow, f) for f in FIELDS]
