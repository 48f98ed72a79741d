"""Imports and pulls of images, built where the site says: by a Slurm job (the
``image_build`` kind, the default: the image is BUILDING until it ends) or here, in the
foreground (``--here``, ``image_build = "here"``).

The image's record comes first (gateway/stores/images.py: one per content, so two
imports of it at once make one build); a build that cannot be submitted takes the record
with it. Removing an image whose build runs cancels the build and waits for Slurm to end
it, so nothing of the SIF is left to appear afterwards.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.common.errors import InvalidInput, NotFound
from gateway.context import Gateway

if TYPE_CHECKING:
    from gateway.common.specs import Resources
    from gateway.stores.images import ImageRecord, Progress

BUILD_PLACES = ("slurm", "here")
# How long `gw image rm` waits for Slurm to end a cancelled build (its KillWait and more).
CANCEL_WAIT_SECONDS = 120.0


@dataclass(frozen=True)
class BuildOptions:
    """Where and with what an import builds: ``here`` (None: the site's image_build),
    and the build job's resources as given (None: the site's image_build_* values)."""

    here: bool | None = None
    cpus: int | None = None
    mem: str | None = None
    time: str | None = None
    partition: str | None = None

    def in_slurm(self, gw: Gateway) -> bool:
        """Whether the build runs as a Slurm job."""
        if self.here is not None:
            return not self.here
        place = str(gw.config["image_build"])
        if place not in BUILD_PLACES:
            raise InvalidInput(f"image_build {place!r}: one of {', '.join(BUILD_PLACES)}")
        return place == "slurm"

    def resources(self, gw: Gateway) -> Resources:
        """The build job's resources: these options, then the site's image_build_*."""
        from gateway.common.specs import parse_resources

        config = gw.config
        defaults = {"cpus": config["image_build_cpus"], "gpus": 0,
                    "mem": config["image_build_mem"], "shm": "1M",
                    "time": config["image_build_time"],
                    "partition": config["image_build_partition"] or config["partition"]}
        return parse_resources(cpus=self.cpus, gpus=None, mem=self.mem, shm=None,
                               time=self.time, partition=self.partition, defaults=defaults)


def import_image(gw: Gateway, tarball: Path, name: str, options: BuildOptions,
                 progress: Progress | None = None, *, consume: bool = False
                 ) -> tuple[ImageRecord, bool]:
    """Import a `docker save` (or OCI) archive as ``name``; returns (image, whether this
    call started or ran its build). In Slurm, the image comes back BUILDING.

    ``consume`` (an archive uploaded into ``layout.archives``): the archive is removed
    once nothing needs it: after this call, or, when a build job reads it, by that job
    when it ends (or by `gw image rm` when it never ran)."""
    from containers.archive import read_archive
    from gateway.common.specs import check_image_name
    from gateway.stores.images import archive_build, build_here, claim_image

    handed_over = False
    try:
        name = check_image_name(name)
        if not tarball.is_file():
            raise InvalidInput(f"{tarball}: no such file")
        archive = read_archive(tarball)   # its manifest and config: the digest, quickly
        source = str(tarball.absolute())
        if not options.in_slurm(gw):
            return build_here(gw, name, archive.config_digest, archive.config, source,
                              archive_build(gw, tarball.absolute(), progress))
        resources = options.resources(gw)
        image, must_build = claim_image(gw, name, archive.config_digest, archive.config,
                                        source)
        if must_build:
            image = _submit_build(gw, image, {"source": "archive", "archive": source,
                                              "remove_archive": consume}, resources)
            handed_over = consume
        return image, must_build
    finally:
        if consume and not handed_over:
            tarball.unlink(missing_ok=True)


def pull_image(gw: Gateway, reference: str, name: str, options: BuildOptions, *,
               tls_verify: bool = True, progress: Progress | None = None
               ) -> tuple[ImageRecord, bool]:
    """Take ``reference`` from a registry as ``name`` (see :func:`import_image`)."""
    from containers.build import inspect_registry_image
    from gateway.common.specs import check_image_name
    from gateway.stores.images import build_here, claim_image, registry_build

    name = check_image_name(name)
    digest, config = inspect_registry_image(reference, tls_verify=tls_verify)
    if not options.in_slurm(gw):
        return build_here(gw, name, digest, config, reference,
                          registry_build(gw, reference, digest, tls_verify=tls_verify,
                                         progress=progress))
    resources = options.resources(gw)
    image, must_build = claim_image(gw, name, digest, config, reference)
    if must_build:
        image = _submit_build(gw, image, {"source": "registry", "reference": reference,
                                          "tls_verify": tls_verify}, resources)
    return image, must_build


def _submit_build(gw: Gateway, image: ImageRecord, source: dict[str, Any],
                  resources: Resources) -> ImageRecord:
    """Submit the build job of the BUILDING ``image``; on any failure the image goes."""
    from containers.build_job import REQUEST_FILE
    from gateway.common.errors import SlurmUnavailable
    from gateway.jobs.request import JobRequest
    from gateway.jobs.submit import prepare_job, submit_prepared
    from gateway.stores.images import (
        abandon_build,
        get_image,
        image_limits,
        set_build_job,
        sif_builder,
    )

    limits = image_limits(gw)
    build = {**source, "digest": image.digest, "dest": str(image.sif_path),
             "scratch": str(gw.config["node_scratch"]), "builder": sif_builder(gw),
             "max_image_bytes": limits.max_bytes, "max_zip_ratio": limits.max_ratio}
    request = JobRequest(algo=None, image=image.name, data=None,
                         name=f"image-build-{image.name.replace(':', '-').replace('/', '-')}",
                         command=(sys.executable, "-m", "containers.build_job", REQUEST_FILE),
                         env={}, resources=resources, kind="image_build",
                         model_name="image-build", extra={"build": build})
    try:
        job, script = prepare_job(gw, request)
        set_build_job(gw, image.id, job.id)
        submit_prepared(gw, job, script)
    except SlurmUnavailable as exc:
        if exc.returncode is None:   # Slurm may have it: the job's end decides the image
            raise
        abandon_build(gw, image, str(exc))
        raise
    except BaseException as exc:
        abandon_build(gw, image, str(exc))
        raise
    return get_image(gw, image.name)


def wait_for_image(gw: Gateway, name: str, progress: Progress | None = None,
                   poll: float = 1.0) -> ImageRecord:
    """Follow the image's build until it ends (the spool and Slurm synced as `gw job
    wait` does); ``progress`` gets the build log's last progress line, or the build
    job's state while it waits in the queue."""
    from gateway.stores.images import get_image
    from spool.sync import sync_state

    delay = poll
    while True:
        sync_state(gw, quiet=True)
        image = get_image(gw, name)
        if image.state != "BUILDING" or image.build_job_id is None:
            return image
        if progress is not None:
            build = gw.jobs.get(image.build_job_id)
            queued = f"build job {build.slurm_job_id or ''} {build.state}".replace("  ", " ")
            progress(last_progress_line(gw, image) or
                     (f"{queued} ({build.reason})" if build.reason else queued), 0, 0)
        time.sleep(delay)
        delay = min(delay * 1.5, 5.0)


def last_progress_line(gw: Gateway, image: ImageRecord) -> str:
    """The build log's latest ``gw-build:`` line, without the prefix ("" for none)."""
    try:
        log = build_log(gw, image)
        with log.open("rb") as handle:
            handle.seek(max(0, log.stat().st_size - 4096))
            tail = handle.read().decode(errors="replace").splitlines()
    except (OSError, NotFound):
        return ""
    lines = [line for line in tail if line.startswith("gw-build: ")]
    return lines[-1][len("gw-build: "):] if lines else ""


def build_log(gw: Gateway, image: ImageRecord) -> Path:
    """The log of the image's build job."""
    from gateway.jobs.actions import log_path

    if image.build_job_id is None:
        raise NotFound(f"{image.name} was not built by a job of this home (imported with "
                       "--here, or a site image): it has no build log")
    return log_path(gw, gw.jobs.get(image.build_job_id))


def remove_image(gw: Gateway, name: str) -> tuple[ImageRecord, bool]:
    """Remove the name (see gateway/stores/images.py); the last name of a BUILDING image
    cancels its build first and waits for Slurm to end it. Returns (image, whether the
    SIF went)."""
    from gateway.stores.images import get_image
    from gateway.stores.images import remove_image as remove_name

    image = get_image(gw, name)
    if (image.state == "BUILDING" and image.build_job_id is not None and not image.site
            and _last_name(gw, image)):
        build = gw.jobs.get(image.build_job_id)
        waiting = [j for j in gw.jobs.active_using("image_id", image.id) if j != build.id]
        if waiting:
            raise InvalidInput(f"{image.name} is used by active job(s) "
                               f"{', '.join(map(str, waiting))}; cancel them first")
        if build.active and build.slurm_job_id:
            gw.slurm.cancel(build.slurm_job_id)
            _wait_until_gone(gw, build.slurm_job_id)
        if build.spec.extra.get("build", {}).get("remove_archive"):   # it never ran to the end
            Path(build.spec.extra["build"]["archive"]).unlink(missing_ok=True)
    return remove_name(gw, name)


def _last_name(gw: Gateway, image: ImageRecord) -> bool:
    count = gw.conn.execute("SELECT COUNT(*) FROM image_tags WHERE image_id = ?",
                            (image.id,)).fetchone()[0]
    return int(count) <= 1


def _wait_until_gone(gw: Gateway, slurm_job_id: str) -> None:
    """Until Slurm no longer runs the job (it writes nothing after that)."""
    from gateway.common.errors import SlurmError
    from gateway.jobs.model import state_from_slurm
    from gateway.jobs.states import ACTIVE

    deadline = time.monotonic() + CANCEL_WAIT_SECONDS
    while time.monotonic() < deadline:
        live = gw.slurm.query_active().get(slurm_job_id)
        if live is None or state_from_slurm(live.slurm_state) not in ACTIVE:
            return
        time.sleep(0.5)
    raise SlurmError(["scancel", slurm_job_id], None,
                     f"Slurm still runs the cancelled build {slurm_job_id} after "
                     f"{CANCEL_WAIT_SECONDS:.0f} s: nothing was removed; try again", "scancel")
