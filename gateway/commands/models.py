"""`gw model ...`: harvested model versions and their lineage."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from gateway.commands import json_option, synced_gateway
from gateway.commands.completion import store_completer
from gateway.commands.stores import (
    add_sharing_commands,
    print_collections,
    print_shared_with_me,
    print_version,
    print_versions,
    shared_option,
)


@click.group()
def model() -> None:
    """Models: each successful job's /model, as numbered versions with lineage."""


@model.command("list")
@shared_option
@json_option
def model_list(shared: bool, as_json: bool) -> None:
    """List your models (SHARED names the group of those you share), or with --shared
    those others share with you (use them as OWNER:NAME@vN)."""
    gw = synced_gateway()
    if shared:
        print_shared_with_me(gw, "model", as_json)
    else:
        print_collections(gw, "model", gw.store("model").collections(), as_json)


@model.command("versions")
@click.argument("name", shell_complete=store_completer("model"))
@json_option
def model_versions(name: str, as_json: bool) -> None:
    """List the versions of a model: NAME, or OWNER:NAME shared with you."""
    print_versions(synced_gateway().versions("model", name), as_json)


@model.command("show")
@click.argument("ref", shell_complete=store_completer("model"))
@json_option
def model_show(ref: str, as_json: bool) -> None:
    """Show a model version and its lineage: NAME (latest) or NAME@vN."""
    from gateway.common.specs import parse_version_ref

    print_version(synced_gateway().version("model", parse_version_ref(ref, "model")), as_json)


@model.command("files")
@click.argument("ref", shell_complete=store_completer("model"))
@json_option
def model_files(ref: str, as_json: bool) -> None:
    """List the files of a model version."""
    from gateway.common.display import human_size, print_json, print_table
    from gateway.common.specs import parse_version_ref
    from gateway.common.trees import list_files

    version = synced_gateway().version("model", parse_version_ref(ref, "model"))
    files = list_files(version.path)
    if as_json:
        print_json([{"path": p, "bytes": s} for p, s in files])
    else:
        print_table([(p, human_size(s)) for p, s in files], ["PATH", "SIZE"])


@model.command("cat")
@click.argument("ref", shell_complete=store_completer("model"))
@click.argument("path")
def model_cat(ref: str, path: str) -> None:
    """Print one file of a model version."""
    from gateway.stores.model_downloads import open_model_file

    with open_model_file(synced_gateway(), ref, path) as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            sys.stdout.buffer.write(chunk)


@model.command("download")
@click.argument("ref", shell_complete=store_completer("model"))
@click.option("-o", "--output", "output", required=True, type=click.Path(path_type=Path),
              help="The .tar.gz to write.")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
def model_download(ref: str, output: Path, quiet: bool) -> None:
    """Write a model version as a .tar.gz (progress with sizes and rate on a terminal)."""
    from gateway.common.display import human_size
    from gateway.common.progress import StepProgress
    from gateway.stores.model_downloads import download_model

    with StepProgress(f"download {ref}", enabled=not quiet) as progress:
        size = download_model(synced_gateway(), ref, output,
                              lambda done, total: progress("pack", done, total))
    click.echo(f"wrote {output} ({human_size(size)})")


add_sharing_commands(model, "model", "model")
