"""Site images: converted once by an administrator, run by every user, changed by none.

``gw image publish NAME:TAG`` (run by an administrator) copies an image of their own home
into the site's ``site_images`` directory::

    site_images/            0755 admin      only its owner writes here
      index.json            0644 admin      name -> digest, SIF file, image config
      sha256-<hex>.sif      0444 admin      one SIF per digest, shared by its names

Every user's ``gw image list`` shows these marked ``site``, and ``--image NAME:TAG`` runs
one when the user has no image of that name. A user trusts the directory only while its
owner alone may write it and owns what is in it: a site store anyone could change would
let one user choose what runs in everyone's jobs, so such a store is refused, loudly.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.common.atomic import replacing, write_atomic
from gateway.common.errors import InvalidInput, NotFound

if TYPE_CHECKING:
    from gateway.home.config import Config
    from gateway.stores.context import StoresContext
    from gateway.stores.image_record import ImageRecord

INDEX = "index.json"
FORMAT = 1


def site_root(config: Config) -> Path | None:
    """The site image directory, or None when the site has none."""
    value = str(config["site_images"] or "")
    return Path(value) if value else None


def _trusted(path: Path, owner: int) -> None:
    """Refuse ``path`` unless ``owner`` (or root) owns it and nobody else may write it."""
    info = path.lstat()
    if (info.st_uid not in (owner, 0) or stat.S_ISLNK(info.st_mode)
            or info.st_mode & 0o022):
        raise InvalidInput(f"the site image store is not safe: {path} is writable by others "
                           f"or not its administrators' (mode {stat.S_IMODE(info.st_mode):o}"
                           "); its images are not used until the site fixes it")


def _read(root: Path) -> dict[str, dict[str, Any]]:
    """The checked index: name -> record."""
    try:
        owner = root.stat().st_uid
        _trusted(root, owner)
        _trusted(root / INDEX, owner)
        data = json.loads((root / INDEX).read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"the site image index {root / INDEX} is unreadable: {exc}") from exc
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, dict):
        raise InvalidInput(f"{root / INDEX} is not a site image index")
    return images


def _record(root: Path, name: str, entry: dict[str, Any]) -> ImageRecord:
    from gateway.stores.image_record import ImageRecord

    sif = root / Path(str(entry["sif"])).name
    _trusted(sif, root.stat().st_uid)
    return ImageRecord(id=0, name=name, digest=str(entry["digest"]), sif_path=sif,
                       partition_offset=int(entry["partition_offset"]),
                       size_bytes=int(entry["bytes"]), config=entry.get("config") or {},
                       source=str(entry.get("source", "")),
                       created=float(entry.get("published", 0)), site=True)


def list_site_images(config: Config) -> list[ImageRecord]:
    """Every site image, by name."""
    root = site_root(config)
    if root is None:
        return []
    return [_record(root, name, entry) for name, entry in sorted(_read(root).items())]


def get_site_image(config: Config, name: str) -> ImageRecord | None:
    """The site image ``name`` (``repo:tag``), or None."""
    root = site_root(config)
    if root is None:
        return None
    entry = _read(root).get(name)
    return None if entry is None else _record(root, name, entry)


def site_image_by_digest(config: Config, digest: str) -> ImageRecord | None:
    """A site image with this digest (what a rerun pins), or None."""
    root = site_root(config)
    if root is None:
        return None
    for name, entry in sorted(_read(root).items()):
        if entry.get("digest") == digest:
            return _record(root, name, entry)
    return None


def _writable_root(config: Config) -> Path:
    root = site_root(config)
    if root is None:
        raise InvalidInput("this cluster has no site image store: the site sets site_images "
                           "in /etc/hpc-gateway/config.toml (see docs/sharing.md)")
    try:
        info = root.stat()
    except OSError as exc:
        raise InvalidInput(f"site_images {root} is not usable ({exc.strerror}): an "
                           f"administrator creates it with `install -d -m 0755 {root}`") from exc
    if info.st_uid != os.getuid() or not os.access(root, os.W_OK):
        raise InvalidInput(f"only the site's administrators publish images: {root} belongs to "
                           f"uid {info.st_uid} and you may not write it")
    if info.st_mode & 0o022:
        raise InvalidInput(f"site_images {root} is writable by others (mode "
                           f"{stat.S_IMODE(info.st_mode):o}): `chmod 0755 {root}` first")
    return root


def _locked_update(root: Path, change: Callable[[dict[str, dict[str, Any]]], Any]) -> Any:
    """Apply ``change`` to the index under the store's lock, then write it atomically."""
    with open(root / ".lock", "a") as lock:
        os.chmod(root / ".lock", 0o600)
        fcntl.flock(lock, fcntl.LOCK_EX)
        images = _read(root)
        result = change(images)
        write_atomic(root / INDEX, json.dumps({"format": FORMAT, "images": images}, indent=2,
                                              sort_keys=True) + "\n", mode=0o644)
        return result


def publish(gw: StoresContext, image: ImageRecord, as_name: str | None = None,
            progress: Callable[[int, int], None] | None = None) -> ImageRecord:
    """Copy the administrator's ``image`` into the site store as ``as_name``."""
    from gateway.common.specs import check_image_name

    root = _writable_root(gw.config)
    if image.site:
        raise InvalidInput(f"{image.name} is already a site image")
    if not image.ready:
        raise InvalidInput(f"{image.name} is {image.state}: only a READY image is published "
                           f"(gw image show {image.name})")
    target_name = check_image_name(as_name or image.name)
    if "@" in target_name:
        raise InvalidInput("a site image is published under NAME:TAG, without a digest")
    sif = root / f"{image.digest.replace(':', '-')}.sif"
    if not sif.exists():
        with replacing(sif, mode=0o444) as tmp:
            _copy(image.sif_path, tmp, progress)
    entry = {"digest": image.digest, "sif": sif.name,
             "partition_offset": image.partition_offset, "bytes": image.size_bytes,
             "config": image.config, "source": image.source, "published": time.time(),
             "by": _user()}
    _locked_update(root, lambda images: images.__setitem__(target_name, entry))
    record = get_site_image(gw.config, target_name)
    assert record is not None
    return record


def unpublish(gw: StoresContext, name: str) -> ImageRecord:
    """Withdraw the site image ``name``; its SIF goes when no other name uses it."""
    from gateway.common.specs import check_image_name

    root = _writable_root(gw.config)
    name = check_image_name(name)
    record = get_site_image(gw.config, name)
    if record is None:
        raise NotFound(f"no site image named {name!r} (see `gw image list`)")

    def drop(images: dict[str, dict[str, Any]]) -> bool:
        images.pop(name, None)
        return not any(e.get("sif") == record.sif_path.name for e in images.values())

    if _locked_update(root, drop):
        record.sif_path.unlink(missing_ok=True)
    return record


def _copy(source: Path, dest: Path, progress: Callable[[int, int], None] | None) -> None:
    total, done = source.stat().st_size, 0
    with source.open("rb") as src, dest.open("wb") as out:
        while chunk := src.read(8 << 20):
            out.write(chunk)
            done += len(chunk)
            if progress:
                progress(done, total)
    shutil.copystat(source, dest)


def _user() -> str:
    from gateway.stores.sharing import user_name

    return user_name()
