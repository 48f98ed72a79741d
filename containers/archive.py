"""Reading `docker save` archives safely, without Docker.

Both layouts are read: the legacy one (``<id>/layer.tar``, ``<config>.json``,
``manifest.json``) and Docker 25+'s OCI one (``oci-layout``, ``index.json``,
``blobs/sha256/...``, with or without ``manifest.json``). :func:`read_archive` checks the
structure (fast: headers, manifest and config only). :func:`check_layers` streams every
layer once, verifies it against its digests and refuses what could write outside the
image or onto the host (see :mod:`containers.layers`).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import posixpath
import tarfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

from containers.file_range import FileRange
from containers.layers import (
    BackgroundDigests,
    ImageLimits,
    LayerGuard,
    LayerProgress,
    layer_compression,
    scan_layer,
)
from containers.read_lease import read_lease
from gateway.common.errors import InvalidInput

if TYPE_CHECKING:
    from containers.flatten import LayerTree

# `uname -m` -> the architecture names image configs use.
HOST_ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64", "ppc64le": "ppc64le",
                      "s390x": "s390x", "riscv64": "riscv64", "i686": "386", "armv7l": "arm"}


class ImageArchiveError(InvalidInput):
    """The archive is not a usable, safe `docker save` archive (names the part at fault)."""


@dataclass(frozen=True)
class ImageArchive:
    """What a `docker save` archive holds, as far as an import needs it."""

    path: Path
    layout: str
    config_digest: str
    config: dict[str, Any]
    layer_members: tuple[str, ...]
    repo_tags: tuple[str, ...] = field(default=())
    has_manifest_json: bool = True

    @property
    def env(self) -> dict[str, str]:
        """The image's ``Env`` as a dict (order kept)."""
        value: dict[str, str] = image_config_summary(self.config)["env"]
        return value

    @property
    def workdir(self) -> str:
        """The image's ``WorkingDir`` (``/`` when unset)."""
        value: str = image_config_summary(self.config)["workdir"]
        return value

    @property
    def cmd(self) -> list[str]:
        """The image's ``Cmd``."""
        value: list[str] = image_config_summary(self.config)["cmd"]
        return value

    @property
    def entrypoint(self) -> list[str]:
        """The image's ``Entrypoint``."""
        value: list[str] = image_config_summary(self.config)["entrypoint"]
        return value

    @property
    def architecture(self) -> str:
        """``amd64``, ``arm64``, ..."""
        value: str = image_config_summary(self.config)["architecture"]
        return value

    @property
    def diff_ids(self) -> tuple[str, ...]:
        """The config's ``rootfs.diff_ids``: the sha256 of each uncompressed layer."""
        return tuple((self.config.get("rootfs") or {}).get("diff_ids") or ())


def image_config_summary(config: dict[str, Any]) -> dict[str, Any]:
    """The parts of an image config a job uses: env, workdir, cmd, entrypoint, architecture."""
    inner = config.get("config") or {}
    env: dict[str, str] = {}
    for item in inner.get("Env") or []:
        key, sep, value = str(item).partition("=")
        if sep and key:
            env[key] = value
    return {"env": env, "workdir": inner.get("WorkingDir") or "/",
            "cmd": [str(a) for a in inner.get("Cmd") or []],
            "entrypoint": [str(a) for a in inner.get("Entrypoint") or []],
            "architecture": config.get("architecture") or "amd64"}


def _open_tar(path: Path) -> tarfile.TarFile:
    if not path.is_file():
        raise ImageArchiveError(f"{path}: no such file")
    with path.open("rb") as handle:
        head = handle.read(4)
    if head[:2] == b"\x1f\x8b":
        raise ImageArchiveError(f"{path}: gzip-compressed; import the plain `docker save` "
                                "tar (gunzip it first)")
    if head == b"\x28\xb5\x2f\xfd":
        raise ImageArchiveError(f"{path}: zstd-compressed; import the plain `docker save` "
                                "tar (unzstd it first)")
    try:
        return tarfile.open(path, "r:")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ImageArchiveError(f"{path}: not a tar archive ({exc})") from exc


def _open_tar_fd(fd: int) -> tarfile.TarFile:
    """The archive open as ``fd`` (already read once: :func:`read_archive`)."""
    return tarfile.open(fileobj=cast(IO[bytes], FileRange(fd, 0, os.fstat(fd).st_size)),
                        mode="r:")


class _Members:
    """The archive's members by normalised name, with archive-internal links resolved."""

    def __init__(self, tar: tarfile.TarFile, path: Path) -> None:
        self.tar = tar
        self.path = path
        try:
            members = tar.getmembers()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise ImageArchiveError(f"{path}: truncated or corrupt tar ({exc})") from exc
        self.by_name: dict[str, tarfile.TarInfo] = {}
        for member in members:
            key = posixpath.normpath(member.name.removeprefix("./"))
            if key in self.by_name:  # which copy would each tool read? neither.
                raise ImageArchiveError(f"{path}: member {member.name!r} appears twice in "
                                        "the archive")
            self.by_name[key] = member
        self.size = path.stat().st_size

    def __contains__(self, name: str) -> bool:
        return posixpath.normpath(name) in self.by_name

    def get(self, name: str, what: str) -> tarfile.TarInfo:
        """The regular-file member ``name`` (links inside the archive are followed)."""
        seen: set[str] = set()
        key = posixpath.normpath(name)
        while True:
            member = self.by_name.get(key)
            if member is None:
                raise ImageArchiveError(f"{self.path}: {what} {name!r} is missing from the "
                                        "archive")
            if not (member.issym() or member.islnk()):
                break
            if key in seen:
                raise ImageArchiveError(f"{self.path}: {what} {name!r} is a link loop")
            seen.add(key)
            base = posixpath.dirname(key) if member.issym() else ""
            key = posixpath.normpath(posixpath.join(base, member.linkname))
        if not member.isfile():
            raise ImageArchiveError(f"{self.path}: {what} {name!r} is not a file")
        if member.offset_data + member.size > self.size:
            raise ImageArchiveError(f"{self.path}: {what} {name!r} is truncated")
        return member

    def read(self, name: str, what: str, limit: int = 64 << 20) -> bytes:
        """The bytes of member ``name`` (a small JSON document: at most ``limit`` bytes)."""
        member = self.get(name, what)
        if member.size > limit:
            raise ImageArchiveError(f"{self.path}: {what} {name!r} is implausibly large "
                                    f"({member.size} bytes)")
        handle = self.tar.extractfile(member)
        assert handle is not None
        data = handle.read()
        if len(data) != member.size:
            raise ImageArchiveError(f"{self.path}: {what} {name!r} is truncated")
        return data

    def json(self, name: str, what: str) -> Any:
        """Member ``name`` parsed as JSON."""
        try:
            return json.loads(self.read(name, what))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ImageArchiveError(f"{self.path}: {what} {name!r} is not valid JSON") from exc


def blob_path(digest: str) -> str:
    """``blobs/sha256/<hex>`` for ``sha256:<hex>`` (any other digest is refused)."""
    algorithm, _sep, hexdigest = str(digest).partition(":")
    if algorithm != "sha256" or len(hexdigest) != 64 or not _is_hex(hexdigest):
        raise ImageArchiveError(f"unsupported or malformed digest {digest!r}")
    return f"blobs/sha256/{hexdigest}"


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def _from_manifest_json(members: _Members) -> tuple[str, list[str], list[str]]:
    manifest = members.json("manifest.json", "manifest")
    if not isinstance(manifest, list) or not manifest:
        raise ImageArchiveError(f"{members.path}: manifest.json lists no image")
    if len(manifest) > 1:
        raise ImageArchiveError(f"{members.path}: holds {len(manifest)} images; save and import "
                                "one at a time")
    entry = manifest[0]
    if (not isinstance(entry, dict) or not isinstance(entry.get("Config"), str)
            or not isinstance(entry.get("Layers"), list)):
        raise ImageArchiveError(f"{members.path}: manifest.json has no Config/Layers")
    return entry["Config"], [str(x) for x in entry["Layers"]], list(entry.get("RepoTags") or [])


def _short_name(reference: str) -> str:
    for prefix in ("docker.io/library/", "docker.io/"):
        if reference.startswith(prefix):
            return reference[len(prefix):]
    return reference


def _pick_manifest(members: _Members, manifests: list[Any]) -> dict[str, Any]:
    """The descriptor for this host's platform whose blob is present, else the first present."""
    present = [m for m in manifests
               if isinstance(m, dict) and blob_path(m.get("digest", "")) in members]
    if not present:
        raise ImageArchiveError(f"{members.path}: index.json names no manifest present in "
                                "the archive")
    host = HOST_ARCHITECTURES.get(platform.machine(), platform.machine())
    for descriptor in present:
        if (descriptor.get("platform") or {}).get("architecture") == host:
            return descriptor
    return present[0]


def _from_index_json(members: _Members) -> tuple[str, list[str], list[str]]:
    document = members.json("index.json", "index")
    tags: list[str] = []
    for _depth in range(4):
        if not isinstance(document, dict):
            break
        if "layers" in document:
            config = (document.get("config") or {}).get("digest", "")
            return (blob_path(config), [blob_path(layer.get("digest", ""))
                                        for layer in document["layers"]], tags)
        descriptor = _pick_manifest(members, document.get("manifests") or [])
        name = (descriptor.get("annotations") or {}).get("io.containerd.image.name")
        if name and not tags:
            tags = [_short_name(name)]
        document = members.json(blob_path(descriptor["digest"]), "manifest")
    raise ImageArchiveError(f"{members.path}: index.json leads to no image manifest")


def _check_config(path: Path, config: Any, layers: list[str]) -> None:
    if not isinstance(config, dict):
        raise ImageArchiveError(f"{path}: the image config is not a JSON object")
    if config.get("os", "linux") != "linux":
        raise ImageArchiveError(f"{path}: a {config['os']!r} image; only linux images run here")
    if not layers:
        raise ImageArchiveError(f"{path}: the image has no layers")


def _check_diff_id_count(archive: ImageArchive) -> None:
    diff_ids = (archive.config.get("rootfs") or {}).get("diff_ids")
    count = len(diff_ids) if isinstance(diff_ids, list) else 0
    if count != len(archive.layer_members):
        raise ImageArchiveError(f"{archive.path}: the image config lists {count or 'no'} layer "
                                f"digests (rootfs.diff_ids) for {len(archive.layer_members)} "
                                "layers")


def read_archive(path: Path) -> ImageArchive:
    """Check the structure of a `docker save` archive and read its config (no layer data).

    The config digest is computed from the config's bytes and must match the name the
    archive gives it. Raises :class:`ImageArchiveError` naming the file and part at fault.
    """
    path = Path(path)
    with _open_tar(path) as tar:
        members = _Members(tar, path)
        has_manifest = "manifest.json" in members
        layout = "docker-oci" if "index.json" in members else "docker-legacy"
        if has_manifest:
            config_name, layers, tags = _from_manifest_json(members)
        elif layout == "docker-oci":
            config_name, layers, tags = _from_index_json(members)
        else:
            raise ImageArchiveError(f"{path}: no manifest.json or index.json: not a `docker "
                                    "save` archive")
        config_bytes = members.read(config_name, "image config")
        digest = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
        expected = posixpath.basename(config_name).removesuffix(".json")
        if len(expected) == 64 and _is_hex(expected) and expected != digest[7:]:
            raise ImageArchiveError(f"{path}: image config {config_name!r} does not match its "
                                    "digest (corrupt archive)")
        try:
            config = json.loads(config_bytes)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ImageArchiveError(f"{path}: image config {config_name!r} is not valid "
                                    "JSON") from exc
        _check_config(path, config, layers)
        resolved = tuple(members.get(layer, "layer").name for layer in layers)
        twice = sorted({name for name in resolved if resolved.count(name) > 1})
        if twice:
            raise ImageArchiveError(f"{path}: the manifest names the layer {twice[0]!r} "
                                    "twice")
    return ImageArchive(path, layout, digest, config, resolved, tuple(tags), has_manifest)


def layer_handles(archive: ImageArchive, fd: int | None = None
                  ) -> Iterator[tuple[str, IO[bytes]]]:
    """(where, seekable handle of the stored layer) for every layer, in order: ``where``
    names the archive and layer for error messages. Each handle is a
    :class:`containers.file_range.FileRange` of the archive (``fd``, when given, is the
    archive open for reading; it stays open), unless the archive stores the layer as a
    sparse member."""
    with _open_tar(archive.path) if fd is None else _open_tar_fd(fd) as tar:
        members = _Members(tar, archive.path)
        layers = [members.get(name, "layer") for name in archive.layer_members]
        own = fd is None
        fd = os.open(archive.path, os.O_RDONLY | os.O_CLOEXEC) if fd is None else fd
        try:
            for name, member in zip(archive.layer_members, layers, strict=True):
                handle = (tar.extractfile(member) if member.issparse()
                          else cast(IO[bytes], FileRange(fd, member.offset_data, member.size)))
                assert handle is not None
                yield f"{archive.path}: layer {name}", handle
        finally:
            if own:
                os.close(fd)


@dataclass(frozen=True)
class PinnedArchive:
    """An archive open for the reads of one build: its layers' handles all read the one
    open file, and ``unchanged`` (None where the file could not be leased: see
    :mod:`containers.read_lease`) says whether it is still as it was when opened."""

    handles: Callable[[], Iterator[tuple[str, IO[bytes]]]]
    unchanged: Callable[[], bool] | None


@contextmanager
def pinned_archive(archive: ImageArchive) -> Iterator[PinnedArchive]:
    """Open ``archive`` once for every read of a build, with a read lease where one can
    be had (the caller then need not check and hash the layers a second time)."""
    fd = os.open(archive.path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        with read_lease(fd) as unchanged:
            yield PinnedArchive(lambda: layer_handles(archive, fd), unchanged)
    finally:
        os.close(fd)


def check_layers(archive: ImageArchive,
                 progress: Callable[[int, int], None] | None = None,
                 limits: ImageLimits | None = None,
                 tree: LayerTree | None = None, digests: bool = True, *,
                 handles: Callable[[], Iterator[tuple[str, IO[bytes]]]] | None = None,
                 background: BackgroundDigests | None = None) -> LayerGuard:
    """Stream every layer (plain, gzip or zstd) once and refuse anything unsafe or
    corrupt; returns what the layers held (:class:`LayerGuard`: the members with setid
    bits; ``tree``, when given, is fed every entry: see :mod:`containers.flatten`).

    Refused, naming the layer and entry: absolute paths, ``..`` components, hardlinks
    whose target is absolute or has ``..``, relative symlinks that climb above the image
    root, character and block devices, and truncated or corrupt layers (a layer whose
    sha256 differs from the config's ``rootfs.diff_ids``, or from its blob name, is
    corrupt; so is a config without one diff_id per layer, checked last so that unsafe
    entries are named first). Absolute symlinks are allowed: they resolve inside the
    container. Refused by :class:`LayerGuard`: FIFOs, names that are not UTF-8, a name
    twice in one layer, an entry written (or hardlinked) through a symlink an earlier
    entry made, and an image that unpacks beyond ``limits``.
    ``progress(bytes_done, bytes_total)`` follows the layer bytes read. ``digests``
    False leaves the digest checks to the streaming build's second read (see
    :func:`layer_digests`). ``handles`` gives the layers (default: :func:`layer_handles`).
    With ``background`` (``digests`` is then ignored), a plain layer's digests are left
    to it (its helper hashes them while the headers are read: the caller calls its
    ``verify`` when it needs them), a compressed layer's are checked as it is
    decompressed.
    """
    guard = LayerGuard(limits or ImageLimits(), tree=tree)
    meter = LayerProgress(layer_bytes(archive), progress)
    expected = layer_digests(archive)
    layers = handles() if handles is not None else layer_handles(archive)
    for (where, handle), (blob_digest, diff_id) in zip(layers, expected, strict=False):
        inline = digests
        if background is not None:
            inline = True
            if isinstance(handle, FileRange) and layer_compression(handle) == "none":
                background.add(handle, where, blob_digest, diff_id)
                inline = False
        scan_layer(handle, where, meter, diff_id=diff_id, blob_digest=blob_digest,
                   error_type=ImageArchiveError, guard=guard, digests=inline)
    meter.finish()
    _check_diff_id_count(archive)
    return guard


def layer_digests(archive: ImageArchive) -> list[tuple[str | None, str | None]]:
    """(digest of the stored blob where its name gives one, the config's diff_id) for
    every layer, in order."""
    diff_ids = archive.diff_ids
    expected: list[tuple[str | None, str | None]] = []
    for index, name in enumerate(archive.layer_members):
        blob_hex = name[len("blobs/sha256/"):] if name.startswith("blobs/sha256/") else None
        expected.append((f"sha256:{blob_hex}" if blob_hex else None,
                         diff_ids[index] if index < len(diff_ids) else None))
    return expected


def layer_bytes(archive: ImageArchive) -> int:
    """The stored size of all the archive's layers (what a read of them all reads)."""
    with _open_tar(archive.path) as tar:
        members = _Members(tar, archive.path)
        return sum(members.get(name, "layer").size for name in archive.layer_members)
