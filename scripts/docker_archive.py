#!/usr/bin/env python3
"""Write `docker save` archives without Docker, in either layout real Docker produces.

    docker-legacy   <layer id>/VERSION, <layer id>/json, <layer id>/layer.tar,
                    <config hex>.json, manifest.json, repositories     (Docker before 25)
    docker-oci      blobs/sha256/<layers, config, manifest>, index.json, manifest.json,
                    oci-layout, repositories                           (Docker 25 and later)

A layer is a directory (tarred as it is: ``.wh.name`` and ``.wh..wh..opq`` whiteout files
included; device nodes, sockets and the contents of /proc, /sys and /dev skipped) or a
list of entries ``(path, content, mode, symlink, whiteout)`` (see :class:`Entry`). Output
is deterministic: sorted entries, numeric owners only, fixed config times; files are
streamed, never held in memory.

    python scripts/docker_archive.py --rootfs DIR --out image.tar --layout docker-legacy \\
        --tag demo:v1 --env PATH=/usr/bin:/bin --workdir /code --cmd python3
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import stat
import tarfile
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

LAYOUTS = ("docker-legacy", "docker-oci")
SKIP_CONTENTS = {"proc", "sys", "dev"}
COPY_BUFFER = 1 << 20
CREATED = "1970-01-01T00:00:00Z"


class Entry(NamedTuple):
    """One layer entry. ``content`` None is a directory (unless ``symlink`` is set).

    ``whiteout`` True writes ``dir/.wh.name`` (deleting ``path`` from lower layers);
    ``whiteout="opaque"`` writes ``path/.wh..wh..opq`` (hiding the lower directory's
    contents). Parent directories are added as needed.
    """

    path: str
    content: bytes | str | None = None
    mode: int | None = None
    symlink: str | None = None
    whiteout: bool | str = False


Layer = Path | str | Sequence[Entry | tuple]


class _HashingWriter:
    """A write-only file wrapper that hashes and counts what goes through it."""

    def __init__(self, target: BinaryIO) -> None:
        self.target = target
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self.target.write(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self.target.flush()


def _normalise(info: tarfile.TarInfo, owner: str, mtime: int | None) -> tarfile.TarInfo:
    """Numeric owners only (root's with ``owner="root"``), whole-second times clamped."""
    if owner == "root":
        info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = int(info.mtime) if mtime is None else min(int(info.mtime), mtime)
    return info


def _add_path(tar: tarfile.TarFile, full: str, arcname: str, owner: str,
              mtime: int | None) -> None:
    """Add one file system object (no recursion), streaming a file's data."""
    info = _normalise(tar.gettarinfo(full, arcname), owner, mtime)
    if info.isreg():
        with open(full, "rb") as handle:
            tar.addfile(info, handle)
    else:
        tar.addfile(info)


def _walk_sorted(source: Path) -> Iterable[tuple[str, str]]:
    """(full path, archive name) of every entry under ``source``, sorted, parents first."""
    for dirpath, dirnames, filenames in os.walk(source):
        rel_dir = os.path.relpath(dirpath, source)
        if rel_dir != ".":
            yield dirpath, rel_dir
        if rel_dir in SKIP_CONTENTS:  # keep /proc, /sys, /dev themselves, not their contents
            dirnames[:] = []
            continue
        # os.walk lists links to directories among dirnames: they are entries, not trees.
        linked = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        dirnames[:] = sorted(d for d in dirnames if d not in linked)
        for name in sorted(filenames + linked):
            full = os.path.join(dirpath, name)
            mode = os.lstat(full).st_mode
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISSOCK(mode):
                continue
            yield full, name if rel_dir == "." else os.path.join(rel_dir, name)


def _entry_infos(entries: Sequence[Entry | tuple]) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    """TarInfos for a list of entries, with missing parent directories added, sorted."""
    items: dict[str, tuple[tarfile.TarInfo, bytes | None]] = {}
    for raw in entries:
        entry = Entry(*raw)
        path = entry.path.strip("/")
        if entry.whiteout == "opaque":
            path, entry = f"{path}/.wh..wh..opq", Entry(f"{path}/.wh..wh..opq", b"")
        elif entry.whiteout:
            head, _sep, tail = path.rpartition("/")
            path = f"{head}/.wh.{tail}" if head else f".wh.{tail}"
            entry = Entry(path, b"")
        info = tarfile.TarInfo(path)
        data = None
        if entry.symlink is not None:
            info.type, info.linkname, info.mode = tarfile.SYMTYPE, entry.symlink, 0o777
        elif entry.content is None:
            info.type, info.mode = tarfile.DIRTYPE, entry.mode or 0o755
        else:
            data = entry.content.encode() if isinstance(entry.content, str) else entry.content
            info.size, info.mode = len(data), entry.mode or 0o644
        items[path] = (info, data)
        parent = os.path.dirname(path)
        while parent not in ("", ".", "..") and parent not in items:
            folder = tarfile.TarInfo(parent)
            folder.type, folder.mode = tarfile.DIRTYPE, 0o755
            items[parent] = (folder, None)
            parent = os.path.dirname(parent)
    return [items[name] for name in sorted(items)]


def write_layer_tar(layer: Layer, out: Path, owner: str = "keep",
                    mtime: int | None = None) -> tuple[str, int]:
    """Write one layer (a directory or a list of entries) as a tar; returns (sha256 hex, size).

    ``owner="root"`` makes every entry owned by 0:0; ``mtime`` clamps newer times to it
    (entries from a list get it, or 0).
    """
    with open(out, "wb") as handle:
        hashing = _HashingWriter(handle)
        with tarfile.open(fileobj=hashing, mode="w", format=tarfile.PAX_FORMAT,
                          copybufsize=COPY_BUFFER) as tar:  # type: ignore[call-overload]
            if isinstance(layer, (str, Path)):
                for full, arcname in _walk_sorted(Path(layer)):
                    _add_path(tar, full, arcname, owner, mtime)
            else:
                for info, data in _entry_infos(layer):
                    info.mtime = mtime or 0
                    tar.addfile(_normalise(info, owner, mtime),
                                io.BytesIO(data) if data is not None else None)
    return hashing.sha256.hexdigest(), hashing.size


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o644
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, 0o755
    tar.addfile(info)


def _add_file(tar: tarfile.TarFile, name: str, path: Path) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = path.stat().st_size, 0o644
    with path.open("rb") as handle:
        tar.addfile(info, handle)


def image_config(diff_ids: list[str], env: dict[str, str] | None = None, workdir: str = "/",
                 cmd: list[str] | None = None, architecture: str = "amd64",
                 overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """An image config as Docker writes it; ``overrides`` go into its ``config`` part."""
    inner: dict[str, Any] = {"Env": [f"{k}={v}" for k, v in (env or {}).items()],
                             "WorkingDir": workdir, "Cmd": list(cmd or ["/bin/sh"])}
    inner.update(overrides or {})
    return {"architecture": architecture, "os": "linux", "created": CREATED, "config": inner,
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{d}" for d in diff_ids]},
            "history": [{"created": CREATED, "created_by": f"layer {i}"}
                        for i in range(len(diff_ids))]}


def _full_name(tag: str) -> str:
    """The containerd name Docker 25 records: docker.io/library/busybox:latest."""
    first = tag.split("/", 1)[0]
    if "/" in tag and ("." in first or ":" in first or first == "localhost"):
        return tag
    return f"docker.io/{tag}" if "/" in tag else f"docker.io/library/{tag}"


def _write_legacy(tar: tarfile.TarFile, layers: list[tuple[Path, str, int]],
                  config_hex: str, config_bytes: bytes) -> tuple[str, list[str], str]:
    names, parent = [], ""
    for path, digest, _size in layers:
        layer_id = hashlib.sha256(f"{parent}\n{digest}".encode()).hexdigest()
        _add_dir(tar, layer_id)
        _add_bytes(tar, f"{layer_id}/VERSION", b"1.0")
        v1 = {"id": layer_id, "created": CREATED, "os": "linux", **({"parent": parent}
                                                                      if parent else {})}
        _add_bytes(tar, f"{layer_id}/json", _json(v1))
        _add_file(tar, f"{layer_id}/layer.tar", path)
        names.append(f"{layer_id}/layer.tar")
        parent = layer_id
    _add_bytes(tar, f"{config_hex}.json", config_bytes)
    return f"{config_hex}.json", names, parent


def _write_oci(tar: tarfile.TarFile, layers: list[tuple[Path, str, int]], config_hex: str,
               config_bytes: bytes, tag: str) -> tuple[str, list[str], str]:
    _add_dir(tar, "blobs")
    _add_dir(tar, "blobs/sha256")
    for path, digest, _size in layers:
        _add_file(tar, f"blobs/sha256/{digest}", path)
    _add_bytes(tar, f"blobs/sha256/{config_hex}", config_bytes)
    manifest = _json({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": f"sha256:{config_hex}", "size": len(config_bytes)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": f"sha256:{d}", "size": s} for _p, d, s in layers]})
    manifest_hex = hashlib.sha256(manifest).hexdigest()
    _add_bytes(tar, f"blobs/sha256/{manifest_hex}", manifest)
    _add_bytes(tar, "index.json", _json({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": f"sha256:{manifest_hex}", "size": len(manifest),
                       "annotations": {"io.containerd.image.name": _full_name(tag),
                                       "org.opencontainers.image.ref.name":
                                           tag.rpartition(":")[2]}}]}))
    _add_bytes(tar, "oci-layout", _json({"imageLayoutVersion": "1.0.0"}))
    names = [f"blobs/sha256/{d}" for _p, d, _s in layers]
    return f"blobs/sha256/{config_hex}", names, layers[-1][1]


def write_docker_archive(out: Path, layers: Sequence[Layer], layout: str = "docker-legacy",
                         env: dict[str, str] | None = None, workdir: str = "/",
                         cmd: list[str] | None = None, tag: str = "gw-test:latest",
                         architecture: str = "amd64", *, config: dict[str, Any] | None = None,
                         owner: str = "keep", mtime: int | None = None,
                         manifest_json: bool = True) -> Path:
    """Write a `docker save` archive of ``layers`` (base first) to ``out``, atomically.

    ``config`` entries override the image config's ``config`` part (``Entrypoint``,
    ``Labels``, ``User``...). ``owner`` is ``keep`` (numeric ids as on disk) or ``root``.
    ``mtime`` clamps file times. ``manifest_json=False`` leaves out ``manifest.json``
    (an OCI-only archive, readable through ``index.json``; docker-oci only).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}: use one of {', '.join(LAYOUTS)}")
    if not layers:
        raise ValueError("an image needs at least one layer")
    out = Path(out)
    repo, _sep, tag_name = tag.rpartition(":")
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".layers-") as tmp:
        written = []
        for index, layer in enumerate(layers):
            path = Path(tmp) / f"layer{index}.tar"
            written.append((path, *write_layer_tar(layer, path, owner, mtime)))
        config_bytes = _json(image_config([d for _p, d, _s in written], env, workdir, cmd,
                                          architecture, config))
        config_hex = hashlib.sha256(config_bytes).hexdigest()
        partial = Path(tmp) / "archive.tar"
        with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT,
                          copybufsize=COPY_BUFFER) as tar:  # type: ignore[call-overload]
            if layout == "docker-legacy":
                config_name, names, top = _write_legacy(tar, written, config_hex, config_bytes)
            else:
                config_name, names, top = _write_oci(tar, written, config_hex, config_bytes,
                                                     tag)
            if manifest_json or layout == "docker-legacy":
                _add_bytes(tar, "manifest.json", _json([{"Config": config_name,
                                                         "RepoTags": [tag], "Layers": names}]))
            _add_bytes(tar, "repositories", _json({repo: {tag_name: top}}))
        os.replace(partial, out)
    return out


def main(argv: list[str] | None = None) -> None:
    """Command line: turn one or more rootfs directories into a `docker save` archive."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rootfs", action="append", required=True, type=Path,
                        help="a layer directory (repeat for more layers, base first)")
    parser.add_argument("--out", required=True, type=Path, help="the archive to write")
    parser.add_argument("--layout", choices=LAYOUTS, default="docker-legacy")
    parser.add_argument("--tag", default="gw-image:latest", help="repository:tag")
    parser.add_argument("--env", action="append", default=[], help="K=V (repeatable)")
    parser.add_argument("--workdir", default="/", help="the image's WorkingDir")
    parser.add_argument("--architecture", default="amd64")
    parser.add_argument("--owner", choices=("keep", "root"), default="keep",
                        help="keep numeric owners, or make everything root's")
    parser.add_argument("--source-date-epoch", type=int, default=None,
                        help="clamp file times to this (seconds since 1970)")
    parser.add_argument("--cmd", nargs="+", default=["/bin/sh"], help="the image's Cmd")
    args = parser.parse_args(argv)
    env = dict(item.split("=", 1) for item in args.env)
    write_docker_archive(args.out, args.rootfs, args.layout, env, args.workdir, args.cmd,
                         args.tag, args.architecture, owner=args.owner,
                         mtime=args.source_date_epoch)


if __name__ == "__main__":
    main()
