"""`gw image ...`: import, pull, list, show, rm, and the site's publish, unpublish."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.stores.images import ImageRecord

from pathlib import Path

import click

from gateway.commands import json_option, open_gateway
from gateway.commands.completion import complete_images


@click.group()
def image() -> None:
    """Container images: `docker save` tarballs or registry images, converted to SIF once."""


def _image_rows(images: list[ImageRecord]) -> list[tuple[Any, ...]]:
    from gateway.common.display import human_size

    return [(i.name, "site" if i.site else "yours", i.digest[:19], human_size(i.size_bytes),
             i.source) for i in images]


@image.command("import")
@click.argument("tarball", type=click.Path(path_type=Path))
@click.option("--name", required=True, help="NAME:TAG to call the image, e.g. detectron2:v1.")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
@json_option
def image_import(tarball: Path, name: str, quiet: bool, as_json: bool) -> None:
    """Import a `docker save` TARBALL (legacy or Docker 25+ layout) as NAME:TAG.

    Layers (plain, gzip or zstd) are checked (no paths leaving the image, no device
    nodes), flattened with their whiteouts in one streaming pass into a SquashFS, and
    the result becomes a SIF image (image_builder in `gw config`). The same content
    imported again, under any name, is converted and stored once, also when two imports
    of it run at the same time.
    """
    from gateway.common.display import print_json
    from gateway.common.progress import StepProgress
    from gateway.stores.images import import_archive

    with StepProgress(f"import {name}", enabled=not quiet) as progress:
        record, converted = import_archive(open_gateway(), tarball, name, progress)
    if as_json:
        print_json({**record.as_dict(), "converted": converted})
    else:
        note = "converted" if converted else "already stored, name added"
        click.echo(f"{record.name}  {record.digest}  ({note})")


@image.command("pull")
@click.argument("reference")
@click.option("--name", required=True, help="NAME:TAG to call the image.")
@click.option("--insecure", is_flag=True, help="Allow a registry without TLS (e.g. localhost).")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
@json_option
def image_pull(reference: str, name: str, insecure: bool, quiet: bool, as_json: bool) -> None:
    """Take REFERENCE (e.g. registry.example.org/team/img:1.0) from a registry as NAME:TAG."""
    from gateway.common.display import print_json
    from gateway.common.progress import StepProgress
    from gateway.stores.images import pull_image

    with StepProgress(f"pull {name}", enabled=not quiet) as progress:
        record, converted = pull_image(open_gateway(), reference, name, tls_verify=not insecure,
                                       progress=progress)
    if as_json:
        print_json({**record.as_dict(), "converted": converted})
    else:
        note = "converted" if converted else "already stored, name added"
        click.echo(f"{record.name}  {record.digest}  ({note})")


@image.command("list")
@json_option
def image_list(as_json: bool) -> None:
    """List image names: yours, then the site's (WHOSE says which; yours come first when
    a name is both)."""
    from gateway.common.display import print_json, print_table
    from gateway.common.errors import InvalidInput
    from gateway.stores.images import list_images

    gw = open_gateway()
    try:
        images = list_images(gw)
    except InvalidInput as exc:  # an unsafe site store: still show the person's own
        click.echo(f"gw: warning: {exc}", err=True)
        images = list_images(gw, site=False)
    if as_json:
        print_json([i.as_dict() for i in images])
    else:
        print_table(_image_rows(images), ["NAME", "WHOSE", "DIGEST", "SIZE", "SOURCE"])


@image.command("show")
@click.argument("name", shell_complete=complete_images)
@json_option
def image_show(name: str, as_json: bool) -> None:
    """Show an image: digest, SIF, size, and its config (env, workdir, cmd)."""
    from gateway.common.display import human_size, human_time, print_fields, print_json
    from gateway.stores.images import get_image

    record = get_image(open_gateway(), name)
    if as_json:
        print_json(record.as_dict())
        return
    config = record.config
    print_fields([("name", record.name), ("digest", record.digest), ("sif", record.sif_path),
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
    """Remove an image name; its SIF goes when no other name uses it."""
    from gateway.common.display import print_json
    from gateway.stores.images import remove_image

    record, deleted = remove_image(open_gateway(), name)
    if as_json:
        print_json({**record.as_dict(), "removed": True, "sif_deleted": deleted})
    else:
        click.echo(f"removed {record.name}" + (f" and {record.sif_path}" if deleted else ""))


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
