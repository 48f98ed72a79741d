#!/usr/bin/env python3
"""Write `docker save` archives without Docker, in either layout real Docker produces.

    docker-legacy   <layer id>/layer.tar, <layer id>/json, VERSION, <config>.json,
                    manifest.json, repositories            (Docker before 25)
    docker-oci      oci-layout, index.json, blobs/sha256/..., manifest.json, repositories
                                                             (Docker 25 and later)

Each layer is a directory tarred as it is (whiteout files such as ``.wh.name`` and
``.wh..wh..opq`` included as they are). Device nodes and the contents of /proc, /sys and
/dev are skipped. Output is deterministic (owner root, fixed times).

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
from pathlib import Path

SKIP_CONTENTS = {"proc", "sys", "dev"}
EPOCH = 0


def _layer_filter(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    if info.ischr() or info.isblk():
        return None
    parts = info.name.split("/")
    if len(parts) > 1 and parts[0] in SKIP_CONTENTS:
        return None
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = EPOCH
    return info


def write_layer_tar(source: Path, out: Path) -> tuple[str, int]:
    """Tar directory ``source`` into ``out``; returns (sha256 hex, size)."""
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for dirpath, dirnames, filenames in os.walk(source):
            rel_dir = os.path.relpath(dirpath, source)
            if rel_dir != ".":
                tar.add(dirpath, arcname=rel_dir, recursive=False, filter=_layer_filter)
            if rel_dir in SKIP_CONTENTS:  # keep /proc, /sys, /dev, not what is in them
                dirnames[:] = []
                continue
            # os.walk lists links to directories among dirnames: they are entries too.
            linked_dirs = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
            dirnames[:] = sorted(d for d in dirnames if d not in linked_dirs)
            for name in sorted(filenames + linked_dirs):
                full = os.path.join(dirpath, name)
                mode = os.lstat(full).st_mode
                if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISSOCK(mode):
                    continue
                arcname = name if rel_dir == "." else os.path.join(rel_dir, name)
                tar.add(full, arcname=arcname, recursive=False, filter=_layer_filter)
    digest = hashlib.sha256()
    with out.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest(), out.stat().st_size


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = EPOCH
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    info.mtime = EPOCH
    tar.addfile(info)


def _json(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def write_docker_archive(out: Path, layers: list[Path], layout: str = "docker-legacy",
                         env: dict[str, str] | None = None, workdir: str = "/",
                         cmd: list[str] | None = None, tag: str = "gw-test:latest",
                         architecture: str = "amd64") -> Path:
    """Write a `docker save` archive of ``layers`` (directories, base first) to ``out``."""
    if layout not in ("docker-legacy", "docker-oci"):
        raise ValueError(f"unknown layout {layout!r}")
    out = Path(out)
    repo, _sep, tag_name = tag.rpartition(":")
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        layer_files = []
        for index, layer in enumerate(layers):
            path = Path(tmp) / f"layer{index}.tar"
            layer_files.append((path, *write_layer_tar(Path(layer), path)))
        config = {
            "architecture": architecture, "os": "linux", "created": "1970-01-01T00:00:00Z",
            "config": {"Env": [f"{k}={v}" for k, v in (env or {}).items()],
                       "WorkingDir": workdir, "Cmd": cmd or ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{h}" for _p, h, _s in layer_files]},
            "history": [{"created": "1970-01-01T00:00:00Z", "created_by": f"layer {i}"}
                        for i in range(len(layer_files))],
        }
        config_bytes = _json(config)
        config_hex = hashlib.sha256(config_bytes).hexdigest()
        with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
            if layout == "docker-legacy":
                names, parent = [], ""
                for path, digest, _size in layer_files:
                    layer_id = hashlib.sha256(f"{parent}\n{digest}".encode()).hexdigest()
                    _add_dir(tar, layer_id)
                    _add_bytes(tar, f"{layer_id}/VERSION", b"1.0")
                    _add_bytes(tar, f"{layer_id}/json",
                               _json({"id": layer_id, **({"parent": parent} if parent else {})}))
                    tar.add(path, arcname=f"{layer_id}/layer.tar")
                    names.append(f"{layer_id}/layer.tar")
                    parent = layer_id
                _add_bytes(tar, f"{config_hex}.json", config_bytes)
                config_name = f"{config_hex}.json"
            else:
                _add_dir(tar, "blobs")
                _add_dir(tar, "blobs/sha256")
                names = []
                for path, digest, _size in layer_files:
                    tar.add(path, arcname=f"blobs/sha256/{digest}")
                    names.append(f"blobs/sha256/{digest}")
                _add_bytes(tar, f"blobs/sha256/{config_hex}", config_bytes)
                config_name = f"blobs/sha256/{config_hex}"
                manifest = _json({
                    "schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                               "digest": f"sha256:{config_hex}", "size": len(config_bytes)},
                    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                "digest": f"sha256:{d}", "size": s} for _p, d, s in layer_files]})
                manifest_hex = hashlib.sha256(manifest).hexdigest()
                _add_bytes(tar, f"blobs/sha256/{manifest_hex}", manifest)
                _add_bytes(tar, "index.json", _json({
                    "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                    "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                   "digest": f"sha256:{manifest_hex}", "size": len(manifest),
                                   "annotations": {
                                       "io.containerd.image.name": f"docker.io/library/{tag}",
                                       "org.opencontainers.image.ref.name": tag_name}}]}))
                _add_bytes(tar, "oci-layout", _json({"imageLayoutVersion": "1.0.0"}))
            _add_bytes(tar, "manifest.json", _json([{"Config": config_name, "RepoTags": [tag],
                                                     "Layers": names}]))
            _add_bytes(tar, "repositories", _json({repo: {tag_name: names[-1].split("/")[-2]
                                                          if layout == "docker-legacy"
                                                          else config_hex}}))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rootfs", action="append", required=True, type=Path,
                        help="a layer directory (repeat for more layers, base first)")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--layout", choices=["docker-legacy", "docker-oci"],
                        default="docker-legacy")
    parser.add_argument("--tag", default="gw-image:latest")
    parser.add_argument("--env", action="append", default=[], help="K=V (repeatable)")
    parser.add_argument("--workdir", default="/")
    parser.add_argument("--cmd", nargs="+", default=["/bin/sh"])
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.env)
    write_docker_archive(args.out, args.rootfs, args.layout, env, args.workdir, args.cmd,
                         args.tag)


if __name__ == "__main__":
    main()
