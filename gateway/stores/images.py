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

from gateway.common.errors import InvalidInput, NotFound
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


_SELECT = """SELECT t.name AS name, i.*, j.slurm_job_id AS build_slurm_id
    FROM image_tags t JOIN images i ON i.id = t.image_id
    LEFT JOIN jobs j ON j.id = i.build_job_id"""


def _record(row: sqlite3.Row | dict[str, Any]) -> ImageRecord:
    return ImageRecord(row["id"], row["name"], row["digest"], Path(row["sif_path"]),
                       row["partition_offset"], row["size_bytes"],
                       db.loads(row["config_json"]), row["source"], row["created"],
                       state=row["state"], reason=row["reason"],
                       build_job_id=row["build_job_id"], build_slurm_id=row["build_slurm_id"])


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
            return _record({**dict(pinned), "name": name, "build_slurm_id": None})
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


def sif_destination(gw: StoresContext, digest: str) -> Path:
    """Where the SIF of the image ``digest`` is kept."""
    return gw.layout.images / f"{digest.replace(':', '-')}.sif"


def claim_image(gw: StoresContext, name: str, digest: str, config: dict[str, Any],
                source: str) -> tuple[ImageRecord, bool]:
    """Name the image of ``digest`` ``name``; returns (image, whether the caller must build
    it). An image READY or BUILDING is only named (its build is the one to wait for); one
    that FAILED, or none, is recorded BUILDING, for the caller to build or to abandon
    (:func:`abandon_build`). One transaction: two imports of one content at once make one
    record, and one of them builds."""
    from containers.archive import image_config_summary

    with db.transaction(gw.conn):
        existing = _existing_by_digest(gw, digest)
        if existing is not None and existing["state"] != "FAILED":
            _tag(gw, name, existing["id"])
            build = False
        elif existing is not None:
            gw.conn.execute("UPDATE images SET state = 'BUILDING', reason = '', build_job_id = "
                            "NULL, source = ?, created = ? WHERE id = ?",
                            (source, time.time(), existing["id"]))
            _tag(gw, name, existing["id"])
            build = True
        else:
            cursor = gw.conn.execute(
                """INSERT INTO images (digest, sif_path, partition_offset, size_bytes,
                   config_json, source, created, state) VALUES (?, ?, 0, 0, ?, ?, ?,
                   'BUILDING')""",
                (digest, str(sif_destination(gw, digest)),
                 db.dumps(image_config_summary(config)), source, time.time()))
            _tag(gw, name, int(cursor.lastrowid or 0))
            build = True
    return get_image(gw, name), build


def set_build_job(gw: StoresContext, image_id: int, job_id: int) -> None:
    """Record the job that builds the image."""
    with db.transaction(gw.conn):
        gw.conn.execute("UPDATE images SET build_job_id = ? WHERE id = ?", (job_id, image_id))


def record_build_end(gw: StoresContext, image_id: int, job_id: int | None, *,
                     result: dict[str, Any] | None = None, reason: str = "") -> str | None:
    """The build of a BUILDING image ended: READY with the SIF of ``result`` (its
    ``sif``, ``partition_offset``, ``size_bytes``), else FAILED with ``reason``, its temp
    files removed. Only the image's own build (``job_id``; None: a build here) may end
    it. Returns the image's first name, or None when the image is not this build's
    (removed, or built again since). Repeatable: a decided image stays as it is."""
    from containers.build import remove_partials

    with db.transaction(gw.conn):
        row = gw.conn.execute("SELECT * FROM images WHERE id = ?", (image_id,)).fetchone()
        if row is None or row["build_job_id"] != job_id:
            return None
        if row["state"] == "BUILDING":
            if result is not None:
                gw.conn.execute("UPDATE images SET state = 'READY', reason = '', sif_path = ?, "
                                "partition_offset = ?, size_bytes = ? WHERE id = ?",
                                (str(result["sif"]), int(result["partition_offset"]),
                                 int(result["size_bytes"]), image_id))
            else:
                gw.conn.execute("UPDATE images SET state = 'FAILED', reason = ? WHERE id = ?",
                                (reason[:2000] or "the build failed", image_id))
        name = gw.conn.execute("SELECT name FROM image_tags WHERE image_id = ? ORDER BY "
                               "created, name LIMIT 1", (image_id,)).fetchone()
    if result is None:
        remove_partials(Path(row["sif_path"]))
    return str(name[0]) if name is not None else str(row["digest"])


def abandon_build(gw: StoresContext, image: ImageRecord, reason: str) -> None:
    """A build claimed by :func:`claim_image` could not start or finish: the image and its
    names go, as if never imported (its record and every name given since), and
    nothing of its SIF stays."""
    from containers.build import remove_partials

    with db.transaction(gw.conn):
        gw.jobs.forget_image(image.id)
        gw.conn.execute("DELETE FROM image_tags WHERE image_id = ?", (image.id,))
        gw.conn.execute("DELETE FROM images WHERE id = ? AND state = 'BUILDING'", (image.id,))
    remove_partials(image.sif_path)


def build_here(gw: StoresContext, name: str, digest: str, config: dict[str, Any],
               source: str, build: Callable[[Path, Path], SifImage]
               ) -> tuple[ImageRecord, bool]:
    """Name (and, where no one has, build with ``build(dest, work)``) the image ``digest``
    in this process; returns (image, whether this call built it). A build of it here in
    another process is waited for (the digest's lock), one in a Slurm job is not: the
    image comes back BUILDING."""
    gw.layout.ensure()
    while True:
        image, must_build = claim_image(gw, name, digest, config, source)
        if not must_build and (image.state != "BUILDING" or image.build_job_id is not None):
            return image, False
        with _one_build_of(gw, digest):
            image = get_image(gw, name)
            if image.state == "BUILDING" and image.build_job_id is None:
                # ours, or left BUILDING by a build here that died (we hold its lock)
                return _build_and_record(gw, image, build), True
        # built (or failed) by the build we waited for: look again


def _build_and_record(gw: StoresContext, image: ImageRecord,
                      build: Callable[[Path, Path], SifImage]) -> ImageRecord:
    from containers.build import remove_partials

    remove_partials(image.sif_path)   # a killed build's; ours now: we hold the digest's lock
    work = gw.layout.tmp / f"image-{uuid.uuid4().hex}"
    try:
        try:
            sif = build(image.sif_path, work)
        finally:
            remove_tree(work)
        try:
            record_build_end(gw, image.id, None, result={
                "sif": str(sif.path), "partition_offset": sif.partition_offset,
                "size_bytes": sif.size_bytes})
        except BaseException:
            sif.path.unlink(missing_ok=True)
            raise
    except BaseException as exc:
        abandon_build(gw, image, str(exc))
        raise
    return get_image(gw, image.name)


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


def archive_build(gw: StoresContext, tarball: Path, progress: Progress | None = None
                  ) -> Callable[[Path, Path], SifImage]:
    """``build(dest, work)`` converting ``tarball`` in this process."""
    from containers.convert import convert_archive

    def build(dest: Path, work: Path) -> SifImage:
        return convert_archive(tarball, dest, work, builder=sif_builder(gw),
                               limits=image_limits(gw), progress=progress)

    return build


def registry_build(gw: StoresContext, reference: str, digest: str, *, tls_verify: bool,
                   progress: Progress | None = None) -> Callable[[Path, Path], SifImage]:
    """``build(dest, work)`` pulling and converting ``reference`` in this process."""
    from containers.convert import convert_registry

    def build(dest: Path, work: Path) -> SifImage:
        return convert_registry(reference, dest, work, builder=sif_builder(gw),
                                limits=image_limits(gw), expected_digest=digest,
                                tls_verify=tls_verify, progress=progress)

    return build


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
            active = [job for job in gw.jobs.active_using("image_id", image.id)
                      if job != image.build_job_id]
            if active:
                raise InvalidInput(f"{image.name} is used by active job(s) "
                                   f"{', '.join(map(str, active))}; cancel them first")
            gw.jobs.forget_image(image.id)
        gw.conn.execute("DELETE FROM image_tags WHERE name = ?", (image.name,))
        if others == 0:
            gw.conn.execute("DELETE FROM images WHERE id = ?", (image.id,))
    if others == 0:
        from containers.build import remove_partials

        image.sif_path.unlink(missing_ok=True)
        remove_partials(image.sif_path)
    return image, others == 0
