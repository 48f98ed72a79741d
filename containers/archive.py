"""Reading `docker save` archives safely, without Docker.

Both layouts are read: the legacy one (``<id>/layer.tar``, ``<config>.json``,
``manifest.json``) and Docker 25+'s OCI one (``oci-layout``, ``index.json``,
``blobs/sha256/...``, with or without ``manifest.json``). :func:`read_archive` checks the
structure (fast: headers only); :func:`check_layers` streams every layer and refuses what
could write outside the image or onto the host: absolute or ``..`` paths, hardlinks out of
the tree, relative symlinks that climb above the root, and device nodes.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.errors import InvalidInput


class ImageArchiveError(InvalidInput):
    """The archive is not a usable, safe `docker save` archive."""


@dataclass(frozen=True)
class ImageArchive:
    """What a `docker save` archive holds, as far as import needs it."""

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
        return image_config_summary(self.config)["env"]

    @property
    def workdir(self) -> str:
        """The image's ``WorkingDir`` (``/`` when unset)."""
        return image_config_summary(self.config)["workdir"]

    @property
    def cmd(self) -> list[str]:
        """The image's ``Cmd``."""
        return image_config_summary(self.config)["cmd"]

    @property
    def entrypoint(self) -> list[str]:
        """The image's ``Entrypoint``."""
        return image_config_summary(self.config)["entrypoint"]

    @property
    def architecture(self) -> str:
        """``amd64``, ``arm64``, ..."""
        return image_config_summary(self.config)["architecture"]


def image_config_summary(config: dict[str, Any]) -> dict[str, Any]:
    """The parts of an image config a job uses: env, workdir, cmd, entrypoint, architecture."""
    inner = config.get("config") or {}
    env: dict[str, str] = {}
    for item in inner.get("Env") or []:
        key, _sep, value = str(item).partition("=")
        env[key] = value
    return {"env": env, "workdir": inner.get("WorkingDir") or "/",
            "cmd": list(inner.get("Cmd") or []), "entrypoint": list(inner.get("Entrypoint") or []),
            "architecture": config.get("architecture") or "amd64"}


def _open_tar(path: Path) -> tarfile.TarFile:
    if not path.is_file():
        raise ImageArchiveError(f"{path}: no such file")
    with path.open("rb") as handle:
        head = handle.read(2)
    if head == b"\x1f\x8b":
        raise ImageArchiveError(f"{path}: gzip-compressed; import the plain `docker save` "
                                "tar (gunzip it first)")
    try:
        return tarfile.open(path, "r:")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ImageArchiveError(f"{path}: not a tar archive ({exc})") from exc


class _Members:
    """The archive's members by normalised name, with archive-internal links resolved."""

    def __init__(self, tar: tarfile.TarFile, path: Path) -> None:
        self.tar = tar
        self.path = path
        try:
            members = tar.getmembers()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise ImageArchiveError(f"{path}: truncated or corrupt tar ({exc})") from exc
        self.by_name = {posixpath.normpath(m.name.removeprefix("./")): m for m in members}
        self.size = path.stat().st_size

    def get(self, name: str, what: str) -> tarfile.TarInfo:
        """The regular-file member ``name`` (links inside the archive are followed)."""
        seen = set()
        key = posixpath.normpath(name)
        while True:
            member = self.by_name.get(key)
            if member is None:
                raise ImageArchiveError(f"{self.path}: {what} {name!r} is missing from the "
                                        "archive")
            if member.issym() or member.islnk():
                if key in seen:
                    raise ImageArchiveError(f"{self.path}: {what} {name!r} is a link loop")
                seen.add(key)
                base = posixpath.dirname(key) if member.issym() else ""
                key = posixpath.normpath(posixpath.join(base, member.linkname))
                continue
            if not member.isfile():
                raise ImageArchiveError(f"{self.path}: {what} {name!r} is not a file")
            if member.offset_data + member.size > self.size:
                raise ImageArchiveError(f"{self.path}: {what} {name!r} is truncated")
            return member

    def read(self, name: str, what: str) -> bytes:
        """The bytes of member ``name``."""
        member = self.get(name, what)
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


def _blob(digest: str) -> str:
    algorithm, _sep, hexdigest = digest.partition(":")
    if algorithm != "sha256" or len(hexdigest) != 64:
        raise ImageArchiveError(f"unsupported digest {digest!r}")
    return f"blobs/sha256/{hexdigest}"


def _from_manifest_json(members: _Members) -> tuple[str, list[str], list[str]]:
    manifest = members.json("manifest.json", "manifest")
    if not isinstance(manifest, list) or not manifest:
        raise ImageArchiveError(f"{members.path}: manifest.json lists no image")
    if len(manifest) > 1:
        raise ImageArchiveError(f"{members.path}: holds {len(manifest)} images; save and import "
                                "one at a time")
    entry = manifest[0]
    if not isinstance(entry, dict) or "Config" not in entry or "Layers" not in entry:
        raise ImageArchiveError(f"{members.path}: manifest.json has no Config/Layers")
    return entry["Config"], list(entry["Layers"]), list(entry.get("RepoTags") or [])


def _from_index_json(members: _Members) -> tuple[str, list[str], list[str]]:
    index = members.json("index.json", "index")
    for _depth in range(3):
        manifests = index.get("manifests") or []
        if not manifests:
            raise ImageArchiveError(f"{members.path}: index.json lists no image")
        descriptor = manifests[0]
        document = members.json(_blob(descriptor["digest"]), "manifest")
        if "layers" in document:
            tags = [descriptor.get("annotations", {}).get("io.containerd.image.name", "")]
            return (_blob(document["config"]["digest"]),
                    [_blob(layer["digest"]) for layer in document["layers"]], [t for t in tags if t])
        index = document
    raise ImageArchiveError(f"{members.path}: index.json nests too deeply")


def read_archive(path: Path) -> ImageArchive:
    """Check the structure of a `docker save` archive and read its config (no layer data)."""
    path = Path(path)
    with _open_tar(path) as tar:
        members = _Members(tar, path)
        has_manifest = "manifest.json" in members.by_name
        layout = "docker-oci" if "index.json" in members.by_name else "docker-legacy"
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
        if len(expected) == 64 and expected != digest.split(":")[1]:
            raise ImageArchiveError(f"{path}: image config {config_name!r} does not match its "
                                    "digest (corrupt archive)")
        try:
            config = json.loads(config_bytes)
        except ValueError as exc:
            raise ImageArchiveError(f"{path}: image config is not valid JSON") from exc
        if not layers:
            raise ImageArchiveError(f"{path}: the image has no layers")
        resolved = tuple(members.get(layer, "layer").name for layer in layers)
    return ImageArchive(path, layout, digest, config, resolved, tuple(tags), has_manifest)


def _check_member(member: tarfile.TarInfo, layer: str, archive: Path) -> None:
    name = member.name
    where = f"{archive}: layer {layer}: {name!r}"
    if name.startswith("/"):
        raise ImageArchiveError(f"{where} has an absolute path")
    normalised = posixpath.normpath(name)
    if normalised == ".." or normalised.startswith("../") or "/../" in f"/{name}/":
        raise ImageArchiveError(f"{where} leaves the image ('..')")
    if member.ischr() or member.isblk():
        raise ImageArchiveError(f"{where} is a device node; images may not carry devices")
    if member.islnk():
        target = member.linkname
        if target.startswith("/") or ".." in target.split("/"):
            raise ImageArchiveError(f"{where} is a hardlink to {target!r}, outside the image")
    elif member.issym() and not member.linkname.startswith("/"):
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(normalised),
                                                     member.linkname))
        if resolved == ".." or resolved.startswith("../"):
            raise ImageArchiveError(f"{where} is a symlink to {member.linkname!r}, which "
                                    "climbs out of the image")


def check_layers(archive: ImageArchive,
                 progress: Callable[[int, int], None] | None = None) -> None:
    """Stream every layer and refuse entries that are unsafe to unpack."""
    with _open_tar(archive.path) as tar:
        members = _Members(tar, archive.path)
        layer_infos = [members.get(name, "layer") for name in archive.layer_members]
        total = sum(info.size for info in layer_infos)
        done = 0
        for name, info in zip(archive.layer_members, layer_infos):
            handle = tar.extractfile(info)
            try:
                with tarfile.open(fileobj=handle, mode="r:*") as layer:
                    for member in layer:
                        _check_member(member, name, archive.path)
            except (tarfile.TarError, OSError, EOFError) as exc:
                raise ImageArchiveError(f"{archive.path}: layer {name} is truncated or "
                                        f"corrupt ({exc})") from exc
            done += info.size
            if progress:
                progress(done, total)
