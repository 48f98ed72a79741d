"""Streaming checks of image layers: one pass per layer, bounded memory.

A layer is read once, through hashes of its stored bytes (the blob digest) and of its
uncompressed tar (the config's ``diff_id``), while every tar header is checked for
entries that could write outside the image root or onto the host.
"""

from __future__ import annotations

import gzip
import hashlib
import posixpath
import tarfile
import zlib
from collections.abc import Callable
from typing import IO

from hpc_gateway.gateway.errors import InvalidInput

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
PROGRESS_STEP = 8 << 20
CHUNK = 1 << 20


class LayerProgress:
    """Counts bytes read over all layers and reports ``(done, total)`` every few MB."""

    def __init__(self, total: int, report: Callable[[int, int], None] | None) -> None:
        self.total = total
        self.done = 0
        self._report = report
        self._last = 0

    def add(self, count: int) -> None:
        """Record ``count`` more bytes read."""
        self.done += count
        if self._report and self.done - self._last >= PROGRESS_STEP:
            self._last = self.done
            self._report(self.done, self.total)

    def finish(self) -> None:
        """Report the final count."""
        if self._report:
            self._report(self.done, self.total)


class _HashingReader:
    """A read-only stream that hashes what passes through it."""

    def __init__(self, source: IO[bytes], meter: LayerProgress | None = None) -> None:
        self.source = source
        self.sha256 = hashlib.sha256()
        self.meter = meter

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size)
        self.sha256.update(data)
        if self.meter is not None:
            self.meter.add(len(data))
        return data

    def drain(self) -> None:
        """Read (and hash) whatever is left."""
        while self.read(CHUNK):
            pass

    def digest(self) -> str:
        return "sha256:" + self.sha256.hexdigest()


def check_member(member: tarfile.TarInfo, where: str,
                 error_type: type[InvalidInput] = InvalidInput) -> None:
    """Refuse one layer entry that could escape the image root or reach the host."""
    name = member.name
    here = f"{where}: {name!r}"
    if not name or name.startswith("/"):
        raise error_type(f"{here} has an absolute or empty path")
    if ".." in name.split("/"):
        raise error_type(f"{here} leaves the image ('..')")
    if member.ischr() or member.isblk():
        raise error_type(f"{here} is a device node; images may not carry devices")
    base = posixpath.basename(posixpath.normpath(name))
    if base in (".wh..", ".wh..."):
        raise error_type(f"{here} is a whiteout of '.' or '..'")
    if member.islnk():
        target = member.linkname
        if not target or target.startswith("/") or ".." in target.split("/"):
            raise error_type(f"{here} is a hardlink to {target!r}, outside the image")
    elif member.issym() and not member.linkname.startswith("/"):
        parent = posixpath.dirname(posixpath.normpath(name))
        resolved = posixpath.normpath(posixpath.join(parent, member.linkname))
        if resolved == ".." or resolved.startswith("../"):
            raise error_type(f"{here} is a symlink to {member.linkname!r}, which climbs out "
                             "of the image")


def _peek(handle: IO[bytes]) -> bytes:
    head = handle.read(4)
    handle.seek(0)
    return head


def scan_layer(handle: IO[bytes], where: str, meter: LayerProgress | None = None, *,
               diff_id: str | None = None, blob_digest: str | None = None,
               error_type: type[InvalidInput] = InvalidInput) -> None:
    """Read the (seekable) layer ``handle`` once: check every entry and both digests.

    ``where`` starts every error message (the archive and layer). A plain or gzip tar is
    accepted; zstd and anything else is refused.
    """
    head = _peek(handle)
    if head == ZSTD_MAGIC:
        raise error_type(f"{where} is zstd-compressed, which this importer cannot read")
    stored = _HashingReader(handle, meter)
    try:
        if head[:2] == GZIP_MAGIC:
            plain = _HashingReader(gzip.GzipFile(fileobj=stored, mode="rb"))  # type: ignore[call-overload]
        else:
            plain = stored
        with tarfile.open(fileobj=plain, mode="r|") as layer:  # type: ignore[call-overload]
            while (member := layer.next()) is not None:
                check_member(member, where, error_type)
                layer.members.clear()  # stream mode would keep every header otherwise
        plain.drain()
        stored.drain()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise error_type(f"{where} is truncated or corrupt ({exc})") from exc
    if blob_digest and stored.digest() != blob_digest:
        raise error_type(f"{where} does not match its digest {blob_digest} (corrupt)")
    if diff_id and plain.digest() != diff_id:
        raise error_type(f"{where} does not match the config's diff_id {diff_id} (corrupt "
                         "or not this image's layer)")
