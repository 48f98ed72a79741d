"""Flattening an image's layers into one tar stream, whiteouts applied, nothing unpacked.

Two reads of every layer, never a root filesystem on disk. The check
(:func:`containers.archive.check_layers`) hands every entry to a :class:`LayerTree`,
which applies each layer's whiteouts and opaque directories to the layers below it, as
an overlay mount would, and so knows which entry of which layer the finished image
keeps. :meth:`LayerTree.finish` then plans what both runtimes need, as
:func:`containers.rootfs.prepare_rootfs` does on an unpacked tree (the mount points, the
files they bind over, Apptainer's metadata), refusing the same images. Finally
:func:`write_flat_tar` reads the layers again in order and copies exactly the kept
entries, their tar headers byte for byte unless something must change (a setuid or
setgid bit cleared, a hard link whose target a later layer replaced), into one tar for a
SquashFS writer's stdin. Where the archive cannot have changed since the check (leased:
:mod:`containers.read_lease`), :func:`write_flat_ranges` writes the same tar from where
the check found each entry, copying runs of entries as byte ranges without reading their
headers again.
"""

from __future__ import annotations

import copy
import io
import json
import posixpath
import stat
import tarfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any, NamedTuple

from containers.archive import ImageArchiveError, image_config_summary
from containers.layer_bytes import LayerBytes
from containers.layers import (
    HashingReader,
    LayerProgress,
    check_member,
    layer_compression,
    layer_read_errors,
    normal_path,
    plain_layer,
    verify_digests,
)
from containers.rootfs import BIND_FILES, MOUNT_POINTS, env_script, runscript
from containers.tar_stream import ENCODING, ERRORS, tar_entries
from gateway.common.errors import InvalidInput

DIR, FILE, SYMLINK, HARDLINK = "dir", "file", "symlink", "hardlink"
IMPLICIT = -1   # a parent directory no layer has an entry for (the writer makes it)
ADDED = -2      # made by the finishing step, not taken from a layer
OPAQUE = ".wh..wh..opq"
WHITEOUT = ".wh."
SETID = stat.S_ISUID | stat.S_ISGID

# (where, layer handle) for every layer of an image, in order, each handle seekable.
LayerHandles = Callable[[], Iterator[tuple[str, IO[bytes]]]]


class _Node:
    """One path of the flattened image: which layer's entry it is, and what kind."""

    __slots__ = ("children", "kind", "layer", "source")

    def __init__(self, layer: int, kind: str) -> None:
        self.layer = layer
        self.kind = kind
        self.children: dict[str, _Node] | None = {} if kind == DIR else None
        # a hard link's data: (layer, path) of the entry that holds it
        self.source: tuple[int, str] | None = None


class Located(NamedTuple):
    """One entry of a layer's tar, as the check found it (:meth:`LayerTree.locate`)."""

    path: str
    header_start: int
    data_start: int
    data_end: int
    link_target: str | None        # a hard link's normalised target
    member: tarfile.TarInfo | None  # kept where the header is always written anew


@dataclass(frozen=True)
class Addition:
    """An entry the finishing step adds after every layer's."""

    path: str
    kind: str
    data: bytes = b""
    mode: int = 0o755
    linkname: str = ""

    def header(self, mtime: int) -> bytes:
        """This entry's tar header (PAX)."""
        info = tarfile.TarInfo(self.path)
        info.type = {DIR: tarfile.DIRTYPE, FILE: tarfile.REGTYPE,
                     SYMLINK: tarfile.SYMTYPE}[self.kind]
        info.mode, info.size, info.linkname, info.mtime = (self.mode, len(self.data),
                                                           self.linkname, mtime)
        return info.tobuf(tarfile.PAX_FORMAT, ENCODING, ERRORS)


def _kind(member: tarfile.TarInfo) -> str:
    if member.isdir():
        return DIR
    if member.issym():
        return SYMLINK
    return HARDLINK if member.islnk() else FILE


class LayerTree:
    """The flattened image, built from every layer's entries in order (see the module)."""

    def __init__(self, keep_offsets: bool = False) -> None:
        self.root = _Node(IMPLICIT, DIR)
        # with keep_offsets, every layer's entries as the check found them (see locate)
        self.keeps_offsets = keep_offsets
        self.located: list[list[Located]] = []
        self.layer = -1
        self.additions: list[Addition] = []
        # (layer, path) of a file some surviving hard link needs, though a later layer
        # replaced or removed the file itself -> the links' names (the first gets the data)
        self.rescued: dict[tuple[int, str], list[str]] = {}
        self._entries: list[tuple[str, str, str, str]] = []
        self._whiteouts: list[str] = []
        self._opaque: list[str] = []
        self._error: type[InvalidInput] = ImageArchiveError
        self.finished = False

    # -- building, during the check -------------------------------------------------

    def begin_layer(self) -> None:
        """The next layer starts: the previous one's changes are applied."""
        self._apply()
        self.layer += 1
        if self.keeps_offsets:
            self.located.append([])

    def locate(self, member: tarfile.TarInfo, path: str, raw: bytes, data_start: int,
               data_bytes: int) -> None:
        """Where the current layer's entry ``member`` (normalised name ``path``) lies in
        the layer's tar: its raw header blocks ``raw`` end at ``data_start``, its data
        (and padding) takes ``data_bytes``. The member itself is kept only where its
        header must be written anew whatever happens (after a global PAX header; setuid
        or setgid bits)."""
        rewrite = not raw or (member.mode & SETID and not member.issym())
        self.located[self.layer].append(Located(
            path, data_start - len(raw), data_start, data_start + data_bytes,
            normal_path(member.linkname) if member.islnk() else None,
            member if rewrite else None))

    def add(self, member: tarfile.TarInfo, path: str, here: str,
            error_type: type[InvalidInput]) -> None:
        """One (checked) entry of the current layer; ``path`` is its normalised name."""
        self._error = error_type
        parent, _slash, base = path.rpartition("/")
        if base == OPAQUE:
            self._opaque.append(parent)
        elif base.startswith(WHITEOUT):
            self._whiteouts.append(posixpath.join(parent, base[len(WHITEOUT):]))
        else:
            kind = _kind(member)
            self._entries.append((path, kind, normal_path(member.linkname)
                                  if kind == HARDLINK else "", here))

    def _apply(self) -> None:
        """A layer's whiteouts and opaque directories hide what the layers below made;
        then its own entries go in (an entry replaces a lower one; a directory over a
        directory keeps what is in it)."""
        for directory in self._opaque:
            node = self.find(directory)
            if node is not None and node.kind == DIR:
                node.children = {}
        for gone in self._whiteouts:
            parent = self.find(posixpath.dirname(gone))
            if parent is not None and parent.children is not None:
                parent.children.pop(posixpath.basename(gone), None)
        for path, kind, target, here in self._entries:
            self._insert(path, kind, target, here)
        self._entries, self._whiteouts, self._opaque = [], [], []

    def _insert(self, path: str, kind: str, target: str, here: str) -> None:
        if not path:
            if kind != DIR:
                raise self._error(f"{here} makes the image root something other than a "
                                  "directory")
            self.root.layer = self.layer
            return
        parent = self._parent(path, here)
        name = path.rpartition("/")[2]
        assert parent.children is not None
        old = parent.children.get(name)
        if kind == DIR and old is not None and old.kind == DIR:
            old.layer = self.layer
            return
        node = _Node(self.layer, kind)
        if kind == HARDLINK:
            held = self.find(target)
            if held is None or held.kind == DIR:
                raise self._error(f"{here} is a hardlink to {target!r}, which the image does "
                                  "not hold as a file")
            node.source = held.source if held.kind == HARDLINK else (held.layer, target)
        parent.children[name] = node

    def _parent(self, path: str, here: str) -> _Node:
        """The directory node ``path`` goes in, made (implicit) where no layer made it."""
        node = self.root
        parts = path.split("/")
        for depth, part in enumerate(parts[:-1]):
            assert node.children is not None
            child = node.children.get(part)
            if child is None:
                child = _Node(IMPLICIT, DIR)
                node.children[part] = child
            elif child.kind != DIR:
                walked = "/".join(parts[:depth + 1])
                raise self._error(f"{here} lies under {walked!r}, which the image has as a "
                                  f"{child.kind}, not a directory")
            node = child
        return node

    def find(self, path: str) -> _Node | None:
        """The node of ``path`` (normalised) in the image as built so far."""
        node: _Node | None = self.root
        if path:
            for part in path.split("/"):
                if node is None or node.children is None:
                    return None
                node = node.children.get(part)
        return node

    def walk(self) -> Iterator[tuple[str, _Node]]:
        """Every (path, node) of the image, parents before children."""
        stack: list[tuple[str, _Node]] = [("", self.root)]
        while stack:
            path, node = stack.pop()
            yield path, node
            if node.children:
                stack.extend((posixpath.join(path, name), child)
                             for name, child in reversed(node.children.items()))

    # -- finishing: what the runtimes need ---------------------------------------------

    def finish(self, config: dict[str, Any]) -> None:
        """Apply the last layer and plan the mount points, bind-target files and
        Apptainer metadata (as :func:`containers.rootfs.prepare_rootfs` makes them);
        refuses an image whose own entries stand in the way, naming them."""
        self._apply()
        summary = image_config_summary(config)
        for rel in MOUNT_POINTS:
            self._ensure_dir(rel, rel)
        for rel in BIND_FILES:
            node = self.find(rel)
            if node is None or node.kind == SYMLINK:
                self._add_file(rel, b"", 0o644)
            elif node.kind not in (FILE, HARDLINK):
                raise ImageArchiveError(f"the image's /{rel} is not a regular file")
        labels = (config.get("config") or {}).get("Labels") or {}
        self._add_file(".singularity.d/env/10-docker2singularity.sh",
                       env_script(summary["env"]).encode(), 0o755)
        self._add_file(".singularity.d/runscript",
                       runscript(summary["entrypoint"], summary["cmd"]).encode(), 0o755)
        self._add_file(".singularity.d/labels.json",
                       (json.dumps(labels, indent=1) + "\n").encode(), 0o644)
        if self.find("singularity") is None:
            self._place("singularity", SYMLINK)
            self.additions.append(Addition("singularity", SYMLINK, mode=0o777,
                                           linkname=".singularity.d/runscript"))
        self._plan_rescues()
        self.finished = True

    def _ensure_dir(self, rel: str, wanted: str) -> _Node:
        node = self.root
        walked = ""
        for part in rel.split("/"):
            walked = posixpath.join(walked, part)
            assert node.children is not None
            child = node.children.get(part)
            if child is None:
                child = node.children[part] = _Node(ADDED, DIR)
                self.additions.append(Addition(walked, DIR))
            elif child.kind == SYMLINK:
                raise ImageArchiveError(f"the image's /{walked} is a symlink; /{wanted} cannot "
                                        "be created in it")
            elif child.kind != DIR:
                raise ImageArchiveError(f"the image's /{walked} is not a directory; /{wanted} "
                                        "cannot be created in it")
            node = child
        return node

    def _place(self, rel: str, kind: str) -> None:
        parent_rel = posixpath.dirname(rel)
        parent = self._ensure_dir(parent_rel, rel) if parent_rel else self.root
        assert parent.children is not None
        old = parent.children.get(posixpath.basename(rel))
        if old is not None and old.kind == DIR:
            raise ImageArchiveError(f"the image's /{rel} is a directory, not a file")
        parent.children[posixpath.basename(rel)] = _Node(ADDED, kind)

    def _add_file(self, rel: str, data: bytes, mode: int) -> None:
        self._place(rel, FILE)
        self.additions.append(Addition(rel, FILE, data, mode))

    def _plan_rescues(self) -> None:
        for path, node in self.walk():
            if node.kind != HARDLINK or node.source is None:
                continue
            layer, target = node.source
            held = self.find(target)
            if held is None or held.layer != layer or held.kind == HARDLINK:
                self.rescued.setdefault(node.source, []).append(path)

    # -- what the second read does with each entry ---------------------------------

    def decide(self, layer: int, member: tarfile.TarInfo) -> tuple[str, str] | None:
        """For an entry of ``layer``: None (leave it out), or (name, hard link target)
        to write it under (the target "" for anything that is not a hard link)."""
        return self.decide_path(layer, normal_path(member.name))

    def decide_path(self, layer: int, path: str) -> tuple[str, str] | None:
        """:meth:`decide` for the entry of ``layer`` whose normalised name is ``path``."""
        base = path.rpartition("/")[2]
        if base == OPAQUE or base.startswith(WHITEOUT):
            return None
        node = self.find(path)
        if node is not None and node.layer == layer:
            if node.kind != HARDLINK:
                return path, ""
            assert node.source is not None
            names = self.rescued.get(node.source)
            if names is None:
                return path, node.source[1]
            return None if names[0] == path else (path, names[0])
        names = self.rescued.get((layer, path))
        return (names[0], "") if names else None


def _header_for(member: tarfile.TarInfo, raw: bytes, name: str, linkname: str,
                where: str) -> bytes:
    """``raw`` when the entry goes out as the layer has it (and ``raw`` is there), else a
    new PAX header."""
    clear = not member.issym() and member.mode & SETID
    same_name = name == normal_path(member.name)
    same_link = not member.islnk() or linkname == normal_path(member.linkname)
    if raw and same_name and same_link and not clear:
        return raw
    if member.issparse():
        raise ImageArchiveError(f"{where}: {member.name!r} is a sparse file that would have "
                                "to be rewritten; not supported")
    changed = copy.copy(member)
    changed.name = name
    if member.islnk():
        changed.linkname = linkname
    if clear:
        changed.mode = member.mode & ~SETID
    return changed.tobuf(tarfile.PAX_FORMAT, ENCODING, ERRORS)


def write_flat_tar(layers: LayerHandles, tree: LayerTree, out: IO[bytes],
                   progress: Callable[[int, int], None] | None = None,
                   total_bytes: int = 0,
                   digests: Sequence[tuple[str | None, str | None]] = ()) -> None:
    """Write the flattened image (the entries ``tree`` keeps, then its additions) to
    ``out`` as one tar. ``tree`` must be finished (:meth:`LayerTree.finish`).

    ``digests`` ((blob digest, diff_id) per layer, either None where unknown) are
    verified as the layers are read, and every entry is checked again as it goes out
    (:func:`containers.layers.check_member`): what is written is what the digests name,
    even if the archive changed since the check. A mismatch raises, which stops the
    writer reading this tar: nothing is installed."""
    if not tree.finished:
        raise ValueError("write_flat_tar needs a finished LayerTree")
    meter = LayerProgress(total_bytes, progress)
    with _reading_again():
        for index, (where, handle) in enumerate(layers()):
            blob_digest, diff_id = digests[index] if index < len(digests) else (None, None)
            compression = layer_compression(handle)
            stored = HashingReader(handle, meter, hashing=bool(
                blob_digest or (diff_id and compression == "none")))
            plain = (HashingReader(plain_layer(stored, compression),  # type: ignore[arg-type]
                                   hashing=bool(diff_id))
                     if compression != "none" else stored)
            for member, raw, data_bytes, reader in tar_entries(
                    plain, where, ImageArchiveError):  # type: ignore[arg-type]
                check_member(member, where, ImageArchiveError)
                decision = tree.decide(index, member)
                if decision is None:
                    reader.skip(data_bytes)
                    continue
                name, linkname = decision
                out.write(_header_for(member, raw, name, linkname, where))
                reader.copy(out, data_bytes, where)
            if blob_digest or diff_id:
                verify_digests(stored, plain, where, blob_digest,
                               diff_id, ImageArchiveError)
    meter.finish()
    _write_additions(tree, out)


@contextmanager
def _reading_again() -> Iterator[None]:
    """A layer that cannot be read again is an :class:`ImageArchiveError`; a broken
    pipe (the writer stopped reading: its exit says why) passes as it is."""
    try:
        yield
    except layer_read_errors() as exc:
        if isinstance(exc, BrokenPipeError):
            raise
        raise ImageArchiveError(f"a layer could not be read again ({exc})") from exc


def _write_additions(tree: LayerTree, out: IO[bytes]) -> None:
    """The finishing step's entries, then the tar's end."""
    mtime = int(time.time())
    for addition in tree.additions:
        out.write(addition.header(mtime))
        if addition.data:
            out.write(addition.data)
            out.write(b"\0" * (-len(addition.data) % tarfile.BLOCKSIZE))
    out.write(b"\0" * (2 * tarfile.BLOCKSIZE))


def _parse_header(blocks: bytes, where: str) -> tarfile.TarInfo:
    """The member whose header blocks (long-name and PAX blocks included) are ``blocks``."""
    for member, _raw, _data, _reader in tar_entries(io.BytesIO(blocks), where,
                                                    ImageArchiveError):
        return member
    raise ImageArchiveError(f"{where}: a header the check read is gone")


def write_flat_ranges(layers: LayerHandles, tree: LayerTree, out: IO[bytes],
                      progress: Callable[[int, int], None] | None = None,
                      total_bytes: int = 0) -> None:
    """:func:`write_flat_tar`'s output, from where the check found each entry
    (``tree`` made with ``keep_offsets``, finished), without reading the headers again:
    the runs of entries kept as they are go out as byte ranges of their layer (a plain
    layer's by the kernel, :class:`containers.layer_bytes.LayerBytes`); only the headers
    that change are read and written anew.

    Nothing here checks or hashes again: only for layers that cannot have changed since
    the check (the archive leased: :mod:`containers.read_lease`)."""
    if not tree.finished or not tree.keeps_offsets:
        raise ValueError("write_flat_ranges needs a finished LayerTree that kept offsets")
    meter = LayerProgress(total_bytes, progress)
    with _reading_again():
        for index, (where, handle) in enumerate(layers()):
            layer = LayerBytes(handle, layer_compression(handle), out, where, meter)
            run_start = run_end = -1
            for entry in tree.located[index]:
                decision = tree.decide_path(index, entry.path)
                if decision is None:
                    continue
                name, linkname = decision
                if (entry.member is None and name == entry.path
                        and linkname == (entry.link_target or "")):
                    if entry.header_start != run_end:
                        if run_end > run_start:
                            layer.copy(run_start, run_end)
                        run_start = entry.header_start
                    run_end = entry.data_end
                    continue
                if run_end > run_start:
                    layer.copy(run_start, run_end)
                run_start = run_end = -1
                member = entry.member or _parse_header(
                    layer.read(entry.header_start, entry.data_start), where)
                out.write(_header_for(member, b"", name, linkname, where))
                layer.copy(entry.data_start, entry.data_end)
            if run_end > run_start:
                layer.copy(run_start, run_end)
            layer.finish()
    meter.finish()
    _write_additions(tree, out)
