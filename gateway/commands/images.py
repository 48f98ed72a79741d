"""`gw image ...`: import, pull, list, show, logs, rm, and the site's publish, unpublish."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.context import Gateway
    from gateway.jobs.image_builds import BuildOptions
    from gateway.stores.images import ImageRecord

import click

from gateway.commands import json_option, open_gateway
from gateway.commands.completion import complete_images


@click.group()
def image() -> None:
    """Container images: `docker save` tarballs or registry images, converted to SIF once."""


def _image_rows(images: list[ImageRecord]) -> list[tuple[Any, ...]]:
    from gateway.common.display import human_size

    return [(i.name, "site" if i.site else "yours", i.state, i.digest[:19],
             human_size(i.size_bytes) if i.ready else "-", i.source) for i in images]


def _current_gateway() -> Gateway:
    """The Gateway, job states synced first when an image is BUILDING (its build job
    may have ended): a list of made images asks Slurm nothing."""
    from spool.sync import sync_state

    gw = open_gateway()
    building = gw.conn.execute("SELECT 1 FROM images WHERE state = 'BUILDING' LIMIT 1")
    if building.fetchone() is not None:
        sync_state(gw, quiet=True)
    return gw


def build_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--here, --wait and the build job's resources, for import and pull."""
    for option in reversed([
        click.option("--here", is_flag=True, default=None,
                     help="Convert on this node, in the foreground (no build job)."),
        click.option("--wait", is_flag=True,
                     help="Wait for the build job, with its progress; exit 1 if it fails."),
        click.option("--partition", default=None,
                     help="Partition of the build job (default: image_build_partition)."),
        click.option("--time", "time_limit", default=None,
                     help="Time limit of the build job (default: image_build_time)."),
        click.option("--cpus", type=int, default=None,
                     help="CPUs of the build job (default: image_build_cpus)."),
        click.option("--mem", default=None,
                     help="Memory of the build job (default: image_build_mem)."),
        click.option("--quiet", "-q", is_flag=True, help="No progress output."),
        json_option]):
        func = option(func)
    return func


def _options(here: bool | None, partition: str | None, time_limit: str | None,
             cpus: int | None, mem: str | None) -> BuildOptions:
    from gateway.jobs.image_builds import BuildOptions

    return BuildOptions(here=here, cpus=cpus, mem=mem, time=time_limit, partition=partition)


def _finish(gw: Gateway, record: ImageRecord, started: bool, wait: bool, quiet: bool,
            as_json: bool) -> None:
    """Print the imported image; with ``wait``, once its build ended (exit 1 unless READY)."""
    from gateway.common.display import print_json
    from gateway.common.progress import StepProgress

    if wait and record.state == "BUILDING":
        from gateway.jobs.image_builds import wait_for_image

        with StepProgress(f"build {record.name}", enabled=not quiet) as progress:
            record = wait_for_image(gw, record.name, progress)
    if as_json:
        print_json({**record.as_dict(), "converted": started})
    elif record.state == "BUILDING":
        click.echo(f"{record.name}  {record.digest}  BUILDING in Slurm job "
                   f"{record.build_slurm_id} (gw job {record.build_job_id}); follow it with: "
                   f"gw image show {record.name}, gw image logs {record.name}")
    elif record.state == "FAILED":
        click.echo(f"gw: image {record.name} failed to build: {record.reason}", err=True)
    else:
        note = "converted" if started else "already stored, name added"
        click.echo(f"{record.name}  {record.digest}  ({note})")
    if record.state == "FAILED":
        sys.exit(1)


@image.command("import")
@click.argument("tarball", type=click.Path(path_type=Path))
@click.option("--name", required=True, help="NAME:TAG to call the image, e.g. detectron2:v1.")
@build_options
def image_import(tarball: Path, name: str, here: bool | None, wait: bool,
                 partition: str | None, time_limit: str | None, cpus: int | None,
                 mem: str | None, quiet: bool, as_json: bool) -> None:
    """Import a `docker save` TARBALL (legacy or Docker 25+ layout) as NAME:TAG.

    The image is BUILDING while a Slurm job converts it (image_build in `gw config`;
    --here converts on this node instead), then READY, or FAILED with the reason. Jobs
    submitted against a BUILDING image wait for its build in Slurm. Layers (plain, gzip
    or zstd) are checked (no paths leaving the image, no device nodes), flattened with
    their whiteouts in one streaming pass into a SquashFS, and the result becomes a SIF
    image (image_builder in `gw config`). The same content imported again, under any
    name, is converted and stored once, also when two imports of it run at the same time.

    Example: gw image import pytorch.tar --name pytorch:2.1 --wait
    """
    from gateway.common.progress import StepProgress
    from gateway.jobs.image_builds import import_image

    gw = open_gateway()
    with StepProgress(f"import {name}", enabled=not quiet) as progress:
        record, started = import_image(gw, tarball, name,
                                       _options(here, partition, time_limit, cpus, mem),
                                       progress)
    _finish(gw, record, started, wait, quiet, as_json)


@image.command("pull")
@click.argument("reference")
@click.option("--name", required=True, help="NAME:TAG to call the image.")
@click.option("--insecure", is_flag=True, help="Allow a registry without TLS (e.g. localhost).")
@build_options
def image_pull(reference: str, name: str, insecure: bool, here: bool | None, wait: bool,
               partition: str | None, time_limit: str | None, cpus: int | None,
               mem: str | None, quiet: bool, as_json: bool) -> None:
    """Take REFERENCE (e.g. registry.example.org/team/img:1.0) from a registry as NAME:TAG.

    Built as `gw image import` builds (a Slurm job unless --here).

    Example: gw image pull registry.example.org/team/img:1.0 --name img:1.0 --wait
    """
    from gateway.common.progress import StepProgress
    from gateway.jobs.image_builds import pull_image

    gw = open_gateway()
    with StepProgress(f"pull {name}", enabled=not quiet) as progress:
        record, started = pull_image(gw, reference, name,
                                     _options(here, partition, time_limit, cpus, mem),
                                     tls_verify=not insecure, progress=progress)
    _finish(gw, record, started, wait, quiet, as_json)


@image.command("list")
@json_option
def image_list(as_json: bool) -> None:
    """List image names: yours, then the site's (WHOSE says which; yours come first when
    a name is both)."""
    from gateway.common.display import print_json, print_table
    from gateway.common.errors import InvalidInput
    from gateway.stores.images import list_images

    gw = _current_gateway()
    try:
        images = list_images(gw)
    except InvalidInput as exc:  # an unsafe site store: still show the person's own
        click.echo(f"gw: warning: {exc}", err=True)
        images = list_images(gw, site=False)
    if as_json:
        print_json([i.as_dict() for i in images])
    else:
        print_table(_image_rows(images), ["NAME", "WHOSE", "STATE", "DIGEST", "SIZE", "SOURCE"])


@image.command("show")
@click.argument("name", shell_complete=complete_images)
@json_option
def image_show(name: str, as_json: bool) -> None:
    """Show an image: state, digest, SIF, size, build job, and its config (env, workdir,
    cmd)."""
    from gateway.common.display import human_size, human_time, print_fields, print_json
    from gateway.stores.images import get_image

    record = get_image(_current_gateway(), name)
    if as_json:
        print_json(record.as_dict())
        return
    config = record.config
    build = (f"gw job {record.build_job_id} (Slurm job {record.build_slurm_id})"
             if record.build_job_id else "here (no build job)")
    print_fields([("name", record.name), ("state", record.state),
                  ("reason", record.reason or None), ("build", build),
                  ("digest", record.digest), ("sif", record.sif_path),
                  ("size", human_size(record.size_bytes)), ("source", record.source),
                  ("whose", "the site's" if record.site else "yours"),
                  ("imported", human_time(record.created)),
                  ("workdir", config.get("workdir")),
                  ("cmd", " ".join(config.get("entrypoint", []) + config.get("cmd", []))),
                  ("architecture", config.get("architecture"))])
    for key, value in config.get("env", {}).items():
        click.echo(f"env:          {key}={value}")


@image.command("rm")
@click.argument("name", shell_complete=complete_images)
@json_option
def image_rm(name: str, as_json: bool) -> None:
    """Remove an image name; its SIF goes when no other name uses it. The last name of a
    BUILDING image cancels its build job first (and waits for Slurm to end it)."""
    from gateway.common.display import print_json
    from gateway.jobs.image_builds import remove_image

    record, deleted = remove_image(_current_gateway(), name)
    if as_json:
        print_json({**record.as_dict(), "removed": True, "sif_deleted": deleted})
    else:
        click.echo(f"removed {record.name}" + (f" and {record.sif_path}" if deleted else ""))


@image.command("logs")
@click.argument("name", shell_complete=complete_images)
def image_logs(name: str) -> None:
    """Print the log of the image's build job (its progress, and its error if it failed).

    Example: gw image logs pytorch:2.1
    """
    from gateway.jobs.image_builds import build_log
    from gateway.stores.images import get_image

    gw = _current_gateway()
    log = build_log(gw, get_image(gw, name))
    try:
        with log.open("rb") as handle:
            while chunk := handle.read(1 << 16):
                sys.stdout.buffer.write(chunk)
    except FileNotFoundError:
        click.echo(f"gw: the build has not started yet: no log at {log}", err=True)


@image.command("publish")
@click.argument("name", shell_complete=complete_images)
@click.option("--as", "as_name", default=None,
              help="NAME:TAG to publish it under (default: its own name).")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
@json_option
def image_publish(name: str, as_name: str | None, quiet: bool, as_json: bool) -> None:
    """Publish your image NAME:TAG as a site image every user can run (administrators).

    The SIF is copied into the site's site_images directory, which only its owner may
    write; users see it in `gw image list` marked "site" and run it with --image NAME:TAG.

    Example: gw image import pytorch.tar --name pytorch:2.1 && gw image publish pytorch:2.1
    """
    from gateway.common.display import print_json
    from gateway.common.progress import StepProgress
    from gateway.stores.images import get_image
    from gateway.stores.site_images import publish

    gw = open_gateway()
    image = get_image(gw, name)
    with StepProgress(f"publish {name}", enabled=not quiet) as progress:
        record = publish(gw, image, as_name,
                         lambda done, total: progress("copy", done, total))
    if as_json:
        print_json(record.as_dict())
    else:
        click.echo(f"{record.name}  {record.digest}  published at {record.sif_path}")


@image.command("unpublish")
@click.argument("name", shell_complete=complete_images)
def image_unpublish(name: str) -> None:
    """Withdraw a site image (administrators); running jobs keep theirs mounted."""
    from gateway.stores.site_images import unpublish

    record = unpublish(open_gateway(), name)
    click.echo(f"withdrew the site image {record.name}")
