"""Reading a tar stream entry by entry, forward only, with each entry's raw header bytes.

:meth:`tarfile.TarInfo.fromtarfile` parses the headers (ustar, GNU long names, PAX
records and sparse maps) through a reader that reads exactly what it is asked: so the
bytes of an entry's header blocks can be kept and copied as they are, and its data
copied or skipped by the caller. One pass, no buffering beyond the current entry, and
about twice as fast as :class:`tarfile.TarFile`'s stream mode.
"""

from __future__ import annotations

import struct
import tarfile
import zlib
from collections.abc import Iterator
from typing import IO

from gateway.common.errors import InvalidInput

CHUNK = 1 << 20
ENCODING, ERRORS = "utf-8", "surrogateescape"


class EntryReader:
    """Reads exactly what is asked (short only at the end), counting and, when asked,
    keeping the bytes: the raw tar headers of the entry being read."""

    def __init__(self, source: IO[bytes], seek: bool = False) -> None:
        self.source = source
        self.position = 0
        self.kept: bytearray | None = None
        self.seeks = seek

    def read(self, size: int) -> bytes:
        """``size`` bytes, fewer only at the end of the stream."""
        data = self.source.read(size)
        if len(data) < size and data:
            parts = [data]
            left = size - len(data)
            while left > 0 and (more := self.source.read(left)):
                parts.append(more)
                left -= len(more)
            data = b"".join(parts)
        self.position += len(data)
        if self.kept is not None:
            self.kept += data
        return data

    def tell(self) -> int:
        """Bytes read so far."""
        return self.position

    def copy(self, out: IO[bytes], count: int, where: str) -> None:
        """Copy the next ``count`` bytes to ``out``."""
        while count > 0:
            data = self.read(min(count, CHUNK))
            if not data:
                raise InvalidInput(f"{where} ends inside an entry (truncated)")
            out.write(data)
            count -= len(data)

    def skip(self, count: int) -> None:
        """Read (or, for a reader made with ``seek``, seek) past the next ``count``
        bytes (fewer at the end of the stream)."""
        if self.seeks and count > 0:
            self.source.seek(count, 1)
            self.position += count
            return
        while count > 0:
            data = self.read(min(count, CHUNK))
            if not data:
                return
            count -= len(data)


# entries whose one header block says all (no PAX, long-name or sparse blocks follow)
PLAIN_TYPES = frozenset((tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.LNKTYPE, tarfile.SYMTYPE,
                         tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.DIRTYPE, tarfile.FIFOTYPE,
                         tarfile.CONTTYPE))
USTAR_MAGICS = (b"ustar\x0000", b"ustar  \x00")
# name mode uid gid size mtime chksum type linkname magic+version uname gname devmajor
# devminor prefix: a ustar header's fields, in one C call
USTAR = struct.Struct("100s8s8s8s12s12s8sc100s8s32s32s8s8s155s")


def _octal(field: bytes) -> int:
    return int(field.split(b"\0", 1)[0].strip() or b"0", 8)


def _number(field: bytes) -> int:
    """An octal field as tarfile reads it (a field it would read otherwise, with a NUL
    before more digits, raises ValueError here: the caller then asks tarfile)."""
    return int(field.rstrip(b"\0 ") or b"0", 8)


def _text(field: bytes) -> str:
    return field.partition(b"\0")[0].decode(ENCODING, ERRORS)


def _block_sum(block: bytes) -> int:
    """The sum of a 512-byte block's bytes: adler32's low half is 1 + the sum modulo
    65521, exact for 256 bytes (at most 65280), and C-fast."""
    return (zlib.adler32(block[:256]) & 0xFFFF) + (zlib.adler32(block[256:]) & 0xFFFF) - 2


class FastTarInfo(tarfile.TarInfo):
    """A :class:`tarfile.TarInfo` whose header parser takes a short path for the plain
    ustar headers nearly every layer entry has (octal numbers, no GNU sparse map), and
    tarfile's own parser for everything else; both give the same member."""

    @classmethod
    def frombuf(cls, buf: bytes, encoding: str, errors: str) -> tarfile.TarInfo:  # type: ignore[override]
        if len(buf) != tarfile.BLOCKSIZE:
            return super().frombuf(buf, encoding, errors)
        (name, mode, uid, gid, size, mtime, chksum, kind, linkname, magic, uname, gname,
         devmajor, devminor, prefix) = USTAR.unpack_from(buf)
        if (magic not in USTAR_MAGICS or kind == tarfile.GNUTYPE_SPARSE
                or (buf[100] | buf[108] | buf[116] | buf[124] | buf[136]) & 0x80):
            return super().frombuf(buf, encoding, errors)
        try:
            checksum = _number(chksum)
            numbers = (_number(mode), _number(uid), _number(gid), _number(size),
                       _number(mtime))
        except ValueError:
            return super().frombuf(buf, encoding, errors)
        if checksum != _block_sum(buf) - sum(chksum) + 256:
            return super().frombuf(buf, encoding, errors)   # it says what is wrong
        member = cls()
        member.mode, member.uid, member.gid, member.size, member.mtime = numbers
        member.chksum = checksum
        member.type = kind
        member.name = _text(name)
        member.linkname = _text(linkname)
        member.uname = _text(uname)
        member.gname = _text(gname)
        member.devmajor = _octal(devmajor) if devmajor[0] else 0
        member.devminor = _octal(devminor) if devminor[0] else 0
        if member.type == tarfile.AREGTYPE and member.name.endswith("/"):
            member.type = tarfile.DIRTYPE
        if member.isdir():
            member.name = member.name.rstrip("/")
        if prefix[0] and member.type not in tarfile.GNU_TYPES:
            member.name = _text(prefix) + "/" + member.name
        return member


class _TarReading:
    """What :meth:`tarfile.TarInfo.fromtarfile` reads headers through: a stream, the
    position of the next header, and the archive's global PAX headers."""

    encoding, errors = ENCODING, ERRORS

    def __init__(self, reader: EntryReader) -> None:
        self.fileobj = reader
        self.offset = 0
        self.pax_headers: dict[str, str] = {}


def tar_entries(plain: IO[bytes], where: str,
                error_type: type[InvalidInput] = InvalidInput, *, seek: bool = False
                ) -> Iterator[tuple[tarfile.TarInfo, bytes, int, EntryReader]]:
    """(member, its raw header blocks, bytes of data and padding after them, reader) for
    every entry of the tar stream ``plain``; the caller copies or skips the data through
    the reader before the next entry. The raw headers are b"" after a global PAX header
    (they would lose what it says). Ends as :class:`tarfile.TarFile` does: at a zero
    block, or at a short header after the first entry; a stream with no header at all
    is an error naming ``where``. With ``seek``, data is skipped by seeking ``plain``
    forward (a plain tar in a file) instead of reading it."""
    reader = EntryReader(plain, seek)
    reading = _TarReading(reader)
    while True:
        start = reader.position
        reader.kept = None
        try:   # tarfile's fromtarfile, without its calls for a plain entry
            buf = reader.read(tarfile.BLOCKSIZE)
            member = FastTarInfo.frombuf(buf, ENCODING, ERRORS)
            member.offset = start
            if member.type in PLAIN_TYPES and not reading.pax_headers:
                member.offset_data = reader.position
                reading.offset = reader.position + (
                    member._block(member.size) if member.isreg() else 0)  # type: ignore[attr-defined]
                yield member, buf, reading.offset - reader.position, reader
                continue
            reader.kept = bytearray(buf)   # a PAX or long-name header: tarfile reads on
            member = member._proc_member(reading)  # type: ignore[attr-defined]
        except tarfile.EOFHeaderError:  # type: ignore[attr-defined]
            return
        except (tarfile.EmptyHeaderError, tarfile.TruncatedHeaderError) as exc:  # type: ignore[attr-defined]
            if start == 0:
                raise error_type(f"{where} is truncated or corrupt ({exc})") from exc
            return
        except tarfile.HeaderError as exc:
            raise error_type(f"{where} is truncated or corrupt ({exc})") from exc
        raw = b"" if reading.pax_headers else bytes(reader.kept)
        reader.kept = None
        yield member, raw, reading.offset - reader.position, reader
