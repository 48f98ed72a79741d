"""The image registry: `docker save` tarballs and registry images converted to SIF once.

Images are keyed by the digest of their config (the Docker image ID): the same content
imported under any name is stored and converted once; names (``repo:tag``) point at it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.common.errors import ContainerToolError, InvalidInput, NotFound
from gateway.common.specs import check_image_name
from gateway.common.trees import remove_tree
from gateway.home import database as db
from gateway.stores.context import StoresContext
from gateway.stores.image_record import ImageRecord

if TYPE_CHECKING:
    import sqlite3

    from containers.build import SifImage
    from containers.layers import ImageLimits

__all__ = ["ImageRecord", "get_image", "list_images"]

Progress = Callable[[str, int, int], None]


_SELECT = """SELECT t.name AS name, i.* FROM image_tags t JOIN images i ON i.id = t.image_id"""


def _record(row: sqlite3.Row | dict[str, Any]) -> ImageRecord:
    return ImageRecord(row["id"], row["name"], row["digest"], Path(row["sif_path"]),
                       row["partition_offset"], row["size_bytes"],
                       db.loads(row["config_json"]), row["source"], row["created"])


def list_images(gw: StoresContext, *, site: bool = True) -> list[ImageRecord]:
    """Every image name of this home, sorted, then the site's (``site=True``)."""
    from gateway.stores.site_images import list_site_images

    own = [_record(r) for r in gw.conn.execute(_SELECT + " ORDER BY t.name").fetchall()]
    return own + (list_site_images(gw.config) if site else [])


def get_image(gw: StoresContext, name: str) -> ImageRecord:
    """The image called ``name`` (``repo:tag``; ``repo`` alone means ``:latest``): this
    home's, else the site's (``gw image publish``)."""
    from gateway.stores.site_images import get_site_image, site_image_by_digest

    name, _at, digest = check_image_name(name).partition("@")
    if digest:
        pinned = _existing_by_digest(gw, digest)
        if pinned is not None:
            return _record({**dict(pinned), "name": name})
        site = site_image_by_digest(gw.config, digest)
        if site is None:
            raise NotFound(f"image {digest} (once {name}) is no longer in this home: import "
                           "it again, or run with another --image")
        return site
    own = _own_image(gw, name)
    if own is not None:
        return own
    site = get_site_image(gw.config, name)
    if site is None:
        raise NotFound(f"no image named {name!r} (see `gw image list`; import one with "
                       "`gw image import TARBALL --name NAME:TAG`)")
    return site


def _own_image(gw: StoresContext, name: str) -> ImageRecord | None:
    row = gw.conn.execute(_SELECT + " WHERE t.name = ?", (name,)).fetchone()
    return None if row is None else _record(row)


def _existing_by_digest(gw: StoresContext, digest: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = gw.conn.execute("SELECT * FROM images WHERE digest = ?",
                                              (digest,)).fetchone()
    return row


def _tag(gw: StoresContext, name: str, image_id: int) -> None:
    gw.conn.execute("INSERT OR REPLACE INTO image_tags (name, image_id, created) VALUES (?, ?, ?)",
                    (name, image_id, time.time()))


@contextmanager
def _one_build_of(gw: StoresContext, digest: str) -> Iterator[None]:
    """Hold the lock of ``digest``'s build: a second import of the same content (in
    another process, on another login node) waits here and then finds the image built.
    The lock file goes when the build ends: whoever takes it afterwards checks the
    database first, as the waiters do."""
    import fcntl

    lock_path = gw.layout.images / f".{digest.replace(':', '-')}.lock"
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            lock_path.unlink(missing_ok=True)
            fcntl.flock(lock, fcntl.LOCK_UN)


def _store(gw: StoresContext, name: str, digest: str, config: dict[str, Any], source: str,
           build: Callable[[Path, Path], Any]) -> tuple[ImageRecord, bool]:
    """Tag an existing image with this digest, or build a SIF with ``build`` and record it
    (one build per digest at a time: see :func:`_one_build_of`)."""
    with db.transaction(gw.conn):
        existing = _existing_by_digest(gw, digest)
        if existing is not None:
            _tag(gw, name, existing["id"])
    if existing is not None:
        return get_image(gw, name), False
    gw.layout.ensure()
    with _one_build_of(gw, digest):
        with db.transaction(gw.conn):
            existing = _existing_by_digest(gw, digest)
            if existing is not None:        # built by the import we waited for
                _tag(gw, name, existing["id"])
        if existing is not None:
            return get_image(gw, name), False
        return _build_and_record(gw, name, digest, config, source, build), True


def _build_and_record(gw: StoresContext, name: str, digest: str, config: dict[str, Any],
                      source: str, build: Callable[[Path, Path], Any]) -> ImageRecord:
    from containers.archive import image_config_summary
    from containers.build import remove_partials

    dest = gw.layout.images / f"{digest.replace(':', '-')}.sif"
    remove_partials(dest)        # a killed build's; ours now: we hold the digest's lock
    work = gw.layout.tmp / f"image-{uuid.uuid4().hex}"
    try:
        sif = build(dest, work)
    finally:
        remove_tree(work)
    try:
        with db.transaction(gw.conn):
            cursor = gw.conn.execute(
                """INSERT INTO images (digest, sif_path, partition_offset, size_bytes,
                   config_json, source, created) VALUES (?, ?, ?, ?, ?, ?, ?)""",
                (digest, str(sif.path), sif.partition_offset, sif.size_bytes,
                 db.dumps(image_config_summary(config)), source, time.time()))
            _tag(gw, name, int(cursor.lastrowid or 0))
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    return get_image(gw, name)


def image_limits(gw: StoresContext) -> ImageLimits:
    """How large an image may unpack, and how far a layer may expand (from the config)."""

    from containers.layers import ImageLimits

    return ImageLimits(int(gw.config["max_image_bytes"]), float(gw.config["max_zip_ratio"]))


def sif_builder(gw: StoresContext) -> str:
    """The SIF builder (``image_builder`` in the config). ``auto`` is ``tools`` when jobs
    run with bubblewrap: an ``apptainer build`` SIF lacks the mount points bubblewrap
    needs; otherwise ``auto`` (apptainer build where installed)."""
    chosen = str(gw.config["image_builder"])
    if chosen == "auto":
        return "tools" if str(gw.config["runtime"]) == "bwrap" else "auto"
    if chosen == "apptainer" and str(gw.config["runtime"]) == "bwrap":
        raise InvalidInput("image_builder apptainer makes SIFs that bubblewrap cannot run "
                           "(runtime bwrap): use stream, unpack or auto")
    return chosen


def import_archive(gw: StoresContext, tarball: Path, name: str,
                   progress: Progress | None = None) -> tuple[ImageRecord, bool]:
    """Import a `docker save` tarball as ``name``; returns (image, whether it was converted)."""
    from containers.archive import check_layers, read_archive
    from containers.build import build_sif_from_archive

    name = check_image_name(name)
    if not tarball.is_file():
        raise InvalidInput(f"{tarball}: no such file")
    archive = read_archive(tarball)

    def build(dest: Path, work: Path) -> SifImage:
        from concurrent.futures import ThreadPoolExecutor

        from containers.build import build_method

        steps = (lambda step: progress(step, 0, 0)) if progress else None
        if build_method(sif_builder(gw)) == "stream":   # checks the layers as it goes
            return build_sif_from_archive(archive, dest, work, steps, builder=sif_builder(gw),
                                          limits=image_limits(gw), meter=progress)
        # The layer check (a read of every layer) overlaps skopeo's copy; nothing is
        # unpacked until it has passed.
        with ThreadPoolExecutor(max_workers=1) as pool:
            check = pool.submit(check_layers, archive,
                                (lambda done, total: progress("check", done, total))
                                if progress else None, image_limits(gw))
            try:
                return build_sif_from_archive(archive, dest, work, steps, builder=sif_builder(gw),
                                              before_unpack=check.result)
            except ContainerToolError:
                check.result()  # a failed check says better why the tool failed
                raise

    return _store(gw, name, archive.config_digest, archive.config, str(tarball.absolute()),
                  build)


def pull_image(gw: StoresContext, reference: str, name: str, *, tls_verify: bool = True,
               progress: Progress | None = None) -> tuple[ImageRecord, bool]:
    """Take ``reference`` from a registry as ``name``; converted once per digest."""
    from containers.build import build_sif_from_registry, inspect_registry_image

    name = check_image_name(name)
    digest, config = inspect_registry_image(reference, tls_verify=tls_verify)

    def build(dest: Path, work: Path) -> SifImage:
        _digest, _config, sif = build_sif_from_registry(
            reference, dest, work, tls_verify=tls_verify, expected_digest=digest,
            progress=(lambda step: progress(step, 0, 0)) if progress else None,
            builder=sif_builder(gw), limits=image_limits(gw))
        return sif

    return _store(gw, name, digest, config, reference, build)


def remove_image(gw: StoresContext, name: str) -> tuple[ImageRecord, bool]:
    """Remove the name; the SIF goes too when no other name points at it.

    Returns (image, whether the SIF was deleted). The last name of an image that active
    jobs run is refused.
    """
    image = get_image(gw, name)
    if image.site:
        raise InvalidInput(f"{image.name} is a site image: only the site's administrators "
                           "withdraw it (gw image unpublish)")
    with db.transaction(gw.conn):
        others = gw.conn.execute("SELECT COUNT(*) FROM image_tags WHERE image_id = ? AND "
                                 "name != ?", (image.id, image.name)).fetchone()[0]
        if others == 0:
            active = gw.jobs.active_using("image_id", image.id)
            if active:
                raise InvalidInput(f"{image.name} is used by active job(s) "
                                   f"{', '.join(map(str, active))}; cancel them first")
            gw.jobs.forget_image(image.id)
        gw.conn.execute("DELETE FROM image_tags WHERE name = ?", (image.name,))
        if others == 0:
            gw.conn.execute("DELETE FROM images WHERE id = ?", (image.id,))
    if others == 0:
        image.sif_path.unlink(missing_ok=True)
    return image, others == 0
