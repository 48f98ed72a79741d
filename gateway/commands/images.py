"""`gw image ...`: import, pull, list, show, rm."""

from __future__ import annotations

from pathlib import Path

import click

from hpc_gateway.gateway.commands import json_option, open_gateway


@click.group()
def image() -> None:
    """Container images: `docker save` tarballs or registry images, converted to SIF once."""


def _image_rows(images):
    from hpc_gateway.gateway.display import human_size

    return [(i.name, i.digest[:19], human_size(i.size_bytes), i.source) for i in images]


@image.command("import")
@click.argument("tarball", type=click.Path(path_type=Path))
@click.option("--name", required=True, help="NAME:TAG to call the image, e.g. detectron2:v1.")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
@json_option
def image_import(tarball: Path, name: str, quiet: bool, as_json: bool) -> None:
    """Import a `docker save` TARBALL (legacy or Docker 25+ layout) as NAME:TAG.

    Layers are checked (no paths leaving the image, no device nodes), applied with their
    whiteouts, and the result becomes a SIF image. The same content imported again, under
    any name, is converted and stored once.
    """
    from hpc_gateway.gateway.display import print_json
    from hpc_gateway.gateway.images import import_archive
    from hpc_gateway.gateway.progress import StepProgress

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
    from hpc_gateway.gateway.display import print_json
    from hpc_gateway.gateway.images import pull_image
    from hpc_gateway.gateway.progress import StepProgress

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
    """List image names."""
    from hpc_gateway.gateway.display import print_json, print_table
    from hpc_gateway.gateway.images import list_images

    images = list_images(open_gateway())
    if as_json:
        print_json([i.as_dict() for i in images])
    else:
        print_table(_image_rows(images), ["NAME", "DIGEST", "SIZE", "SOURCE"])


@image.command("show")
@click.argument("name")
@json_option
def image_show(name: str, as_json: bool) -> None:
    """Show an image: digest, SIF, size, and its config (env, workdir, cmd)."""
    from hpc_gateway.gateway.display import human_size, human_time, print_fields, print_json
    from hpc_gateway.gateway.images import get_image

    record = get_image(open_gateway(), name)
    if as_json:
        print_json(record.as_dict())
        return
    config = record.config
    print_fields([("name", record.name), ("digest", record.digest), ("sif", record.sif_path),
                  ("size", human_size(record.size_bytes)), ("source", record.source),
                  ("imported", human_time(record.created)),
                  ("workdir", config.get("workdir")),
                  ("cmd", " ".join(config.get("entrypoint", []) + config.get("cmd", []))),
                  ("architecture", config.get("architecture"))])
    for key, value in config.get("env", {}).items():
        click.echo(f"env:          {key}={value}")


@image.command("rm")
@click.argument("name")
def image_rm(name: str) -> None:
    """Remove an image name; its SIF goes when no other name uses it."""
    from hpc_gateway.gateway.images import remove_image

    record, deleted = remove_image(open_gateway(), name)
    click.echo(f"removed {record.name}" + (f" and {record.sif_path}" if deleted else ""))
