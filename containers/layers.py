"""Streaming checks of image layers: one pass per layer, bounded memory.

A layer is read once, through hashes of its stored bytes (the blob digest) and of its
uncompressed tar (the config's ``diff_id``), while every tar header is checked for
entries that could write outside the image root or onto the host.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import posixpath
import stat
import subprocess
import sys
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

from containers.tar_stream import tar_entries
from gateway.common.errors import CommandFailed, InvalidInput
from gateway.common.process import start_helper

if TYPE_CHECKING:
    from containers.file_range import FileRange
    from containers.flatten import LayerTree

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
PROGRESS_STEP = 8 << 20
CHUNK = 1 << 20
HASH_TIMEOUT = 6 * 3600


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


class HashingReader:
    """A read-only stream that hashes what passes through it (unless ``hashing`` is
    off) and counts it on ``meter``; :meth:`seek` forward (``whence`` 1) skips bytes
    unhashed, where the source can seek."""

    def __init__(self, source: IO[bytes], meter: LayerProgress | None = None,
                 hashing: bool = True) -> None:
        self.source = source
        self.sha256 = hashlib.sha256() if hashing else None
        self.meter = meter

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size)
        if self.sha256 is not None:
            self.sha256.update(data)
        if self.meter is not None:
            self.meter.add(len(data))
        return data

    def seek(self, offset: int, whence: int) -> int:
        """Skip ``offset`` bytes forward (``whence`` must be 1); nothing is hashed."""
        if whence != 1 or self.sha256 is not None:
            raise ValueError("a hashing reader only skips forward, unhashed")
        if self.meter is not None:
            self.meter.add(offset)
        return self.source.seek(offset, whence)

    def drain(self) -> None:
        """Read (and hash) whatever is left."""
        while self.read(CHUNK):
            pass

    def digest(self) -> str:
        """``sha256:<hex>`` of everything read."""
        assert self.sha256 is not None
        return "sha256:" + self.sha256.hexdigest()


class BackgroundDigests:
    """The digests of plain layers, hashed by a helper process
    (:mod:`containers.hash_worker`) from their stored bytes while the check reads only
    their headers: on a machine with a second core they cost the check no time.
    :meth:`verify` waits for them and refuses a layer whose bytes are not the ones its
    blob name or the config's diff_id names (a plain layer's stored bytes are its tar)."""

    def __init__(self) -> None:
        self._helper: subprocess.Popen[str] | None = None
        self._fd = -1
        self._argv: list[str] = []
        self._pending: list[tuple[str, str | None, str | None]] = []

    def add(self, layer: FileRange, where: str, blob_digest: str | None,
            diff_id: str | None) -> None:
        """Hash the plain layer ``layer`` (unless nothing names its digest). Every layer
        must lie in the same open file."""
        if not (blob_digest or diff_id):
            return
        if self._helper is None:
            self._fd = layer.fd
            self._argv = [sys.executable, "-m", "containers.hash_worker", str(layer.fd)]
            here = str(Path(__file__).resolve().parent.parent)   # where `containers` is
            path = os.environ.get("PYTHONPATH")
            self._helper = start_helper(self._argv, pass_fds=(layer.fd,), env={
                "PYTHONPATH": f"{here}{os.pathsep}{path}" if path else here})
        if layer.fd != self._fd:
            raise ValueError("BackgroundDigests hashes the layers of one open file")
        assert self._helper.stdin is not None
        self._pending.append((where, blob_digest, diff_id))
        try:
            self._helper.stdin.write(f"{layer.start} {layer.size}\n")
            self._helper.stdin.flush()
        except OSError:   # the helper is gone: verify says why (its status and stderr)
            pass

    def verify(self, error_type: type[InvalidInput]) -> None:
        """Wait for every digest and compare it with what names it."""
        if self._helper is None:
            return
        out, err = self._helper.communicate(timeout=HASH_TIMEOUT)
        answers = out.splitlines()
        if self._helper.returncode != 0 or len(answers) != len(self._pending):
            raise CommandFailed(self._argv, self._helper.returncode,
                                err or "it answered too few requests", "layer hashing")
        for answer, (where, blob_digest, diff_id) in zip(answers, self._pending, strict=True):
            if answer.startswith("short"):
                raise error_type(f"{where} is truncated ({answer.split()[1]} bytes missing)")
            if blob_digest and answer != blob_digest:
                raise error_type(f"{where} does not match its digest {blob_digest} (corrupt)")
            if diff_id and answer != diff_id:
                raise error_type(f"{where} does not match the config's diff_id {diff_id} "
                                 "(corrupt or not this image's layer)")

    def close(self) -> None:
        """Stop the helper if it still runs (the check failed before :meth:`verify`)."""
        if self._helper is not None and self._helper.poll() is None:
            self._helper.kill()
            self._helper.communicate()


def verify_digests(stored: HashingReader, plain: HashingReader, where: str,
                   blob_digest: str | None, diff_id: str | None,
                   error_type: type[InvalidInput]) -> None:
    """Read the rest of a layer and refuse it when its bytes are not the ones its blob
    name (stored bytes) or the config's diff_id (uncompressed tar) names."""
    plain.drain()
    stored.drain()
    if blob_digest and stored.digest() != blob_digest:
        raise error_type(f"{where} does not match its digest {blob_digest} (corrupt)")
    if diff_id and plain.digest() != diff_id:
        raise error_type(f"{where} does not match the config's diff_id {diff_id} (corrupt "
                         "or not this image's layer)")


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
    if ".wh.." in name and posixpath.basename(posixpath.normpath(name)) in (".wh..", ".wh..."):
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


@dataclass(frozen=True)
class ImageLimits:
    """How large an image may unpack (``max_image_bytes``), and how far a compressed
    layer may expand (``max_zip_ratio``, as for zips)."""

    max_bytes: int = 1 << 40
    max_ratio: float = 200.0


# A layer smaller than this unpacked is never called a bomb, whatever its ratio.
BOMB_FLOOR = 64 << 20


@dataclass
class LayerGuard:
    """Checks that need every layer of one image, in order: members written through a
    symlink an earlier entry made (a layer never records such a path: the kernel resolved
    it when the file was written), names seen twice in one layer, names that are not
    UTF-8, FIFOs, and the size the image unpacks to. Members with setuid or setgid bits
    are noted: the SIF is built without those bits."""

    limits: ImageLimits = field(default_factory=ImageLimits)
    symlinks: set[str] = field(default_factory=set)
    setid: list[str] = field(default_factory=list)
    unpacked: int = 0
    tree: LayerTree | None = None
    _seen: set[str] = field(default_factory=set)
    _layer_bytes: int = 0

    def begin_layer(self) -> None:
        """A new layer starts: names may repeat across layers (a later one wins)."""
        self._seen = set()
        self._layer_bytes = 0
        if self.tree is not None:
            self.tree.begin_layer()

    def check(self, member: tarfile.TarInfo, here: str, error_type: type[InvalidInput],
              stored_size: int | None) -> str:
        """Check one entry of the current layer (after :func:`check_member`); returns its
        normalised path."""
        name = member.name
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            raise error_type(f"{here} has a name that is not valid UTF-8") from None
        path = normal_path(name)
        if path in self._seen:
            raise error_type(f"{here} appears twice in the layer")
        self._seen.add(path)
        if member.isfifo():
            raise error_type(f"{here} is a FIFO; images may not carry FIFOs")
        if self.symlinks:
            for prefix in _ancestors(path):
                if prefix in self.symlinks:
                    raise error_type(f"{here} is written through the symlink {prefix!r}")
        if member.islnk():
            target = normal_path(member.linkname)
            for prefix in (*_ancestors(target), target):
                if prefix in self.symlinks and prefix != target:
                    raise error_type(f"{here} is a hardlink through the symlink {prefix!r}")
        self._track_links(member, path)
        if member.mode & (stat.S_ISUID | stat.S_ISGID) and not member.issym():
            self.setid.append(path)
        self._count(member, here, error_type, stored_size)
        if self.tree is not None:
            self.tree.add(member, path, here, error_type)
        return path

    def _track_links(self, member: tarfile.TarInfo, path: str) -> None:
        parent, _slash, base = path.rpartition("/")
        if base == ".wh..wh..opq":
            self._forget_under(parent)
        elif base.startswith(".wh."):
            gone = posixpath.join(parent, base[len(".wh."):])
            self.symlinks.discard(gone)
            self._forget_under(gone)
        elif member.issym():
            self.symlinks.add(path)
        else:
            self.symlinks.discard(path)

    def _forget_under(self, directory: str) -> None:
        prefix = directory.rstrip("/") + "/" if directory not in ("", ".") else ""
        self.symlinks = {s for s in self.symlinks if not s.startswith(prefix)}

    def _count(self, member: tarfile.TarInfo, here: str, error_type: type[InvalidInput],
               stored_size: int | None) -> None:
        if not member.isfile():
            return
        self.unpacked += member.size
        self._layer_bytes += member.size
        if member.size > self.limits.max_bytes or self.unpacked > self.limits.max_bytes:
            raise error_type(f"{here} makes the image larger than the limit of "
                             f"{self.limits.max_bytes} bytes unpacked (max_image_bytes in "
                             "`gw config`)")
        if (stored_size and self._layer_bytes > BOMB_FLOOR
                and self._layer_bytes > self.limits.max_ratio * stored_size):
            raise error_type(f"{here} makes the layer expand more than "
                             f"{self.limits.max_ratio:.0f} times its {stored_size} stored "
                             "bytes: refused as a compression bomb (max_zip_ratio in "
                             "`gw config`)")


def normal_path(name: str) -> str:
    """A layer entry's name as a path relative to the image root ("" for the root)."""
    if (name and name[0] not in "/." and name[-1] != "/" and "/." not in name
            and "//" not in name):
        return name                  # nothing for normpath to change: the usual name
    path = posixpath.normpath(name.lstrip("/"))
    return "" if path == "." else path


def _ancestors(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def _peek(handle: IO[bytes]) -> bytes:
    head = handle.read(4)
    handle.seek(0)
    return head


def layer_compression(handle: IO[bytes]) -> str:
    """``gzip``, ``zstd`` or ``none``: how the (seekable) layer ``handle`` is stored."""
    head = _peek(handle)
    if head == ZSTD_MAGIC:
        return "zstd"
    return "gzip" if head[:2] == GZIP_MAGIC else "none"


def plain_layer(stored: IO[bytes], compression: str) -> IO[bytes]:
    """The uncompressed tar stream of a layer read from ``stored`` (see
    :func:`layer_compression`); reads ``stored`` forward only."""
    if compression == "gzip":
        return gzip.GzipFile(fileobj=stored, mode="rb")  # type: ignore[return-value]
    if compression == "zstd":
        import zstandard

        reader: IO[bytes] = zstandard.ZstdDecompressor().stream_reader(stored,
                                                                       read_across_frames=True)
        return reader
    return stored


def layer_read_errors() -> tuple[type[BaseException], ...]:
    """The exceptions a truncated or corrupt layer raises while it is read."""
    errors: tuple[type[BaseException], ...] = (tarfile.TarError, OSError, EOFError, zlib.error)
    try:
        import zstandard
    except ImportError:
        return errors
    return (*errors, zstandard.ZstdError)


def scan_layer(handle: IO[bytes], where: str, meter: LayerProgress | None = None, *,
               diff_id: str | None = None, blob_digest: str | None = None,
               error_type: type[InvalidInput] = InvalidInput,
               guard: LayerGuard | None = None, digests: bool = True) -> None:
    """Read the (seekable) layer ``handle`` once: check every entry and both digests.

    ``where`` starts every error message (the archive and layer). A plain, gzip or zstd
    tar is accepted. ``guard`` carries what the layers of one image must agree on (a new
    one for a lone layer). With ``digests`` False the digests are left to a later read
    (the streaming build's, :func:`verify_digests`) and a plain layer's file data is
    skipped unread: only its headers are read.
    """
    guard = guard or LayerGuard()
    guard.begin_layer()
    stored_size = handle.seek(0, 2)
    handle.seek(0)
    compression = layer_compression(handle)
    skim = not digests and compression == "none"
    stored = HashingReader(handle, meter, hashing=digests)
    try:
        plain = (HashingReader(plain_layer(stored, compression),  # type: ignore[arg-type]
                               hashing=digests)
                 if compression != "none" else stored)
        for member, raw, data_bytes, reader in tar_entries(
                plain, where, error_type, seek=skim):  # type: ignore[arg-type]
            check_member(member, where, error_type)
            path = guard.check(member, f"{where}: {member.name!r}", error_type,
                               stored_size if compression != "none" else None)
            if guard.tree is not None and guard.tree.keeps_offsets:
                guard.tree.locate(member, path, raw, reader.position, data_bytes)
            reader.skip(data_bytes)
        if digests:
            verify_digests(stored, plain, where, blob_digest, diff_id, error_type)
    except layer_read_errors() as exc:
        raise error_type(f"{where} is truncated or corrupt ({exc})") from exc
