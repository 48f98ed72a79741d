"""`gw model ...`: harvested model versions and their lineage."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from hpc_gateway.gateway.commands import json_option, synced_gateway
from hpc_gateway.gateway.commands.stores import print_version, print_versions


@click.group()
def model() -> None:
    """Models: each successful job's /model, as numbered versions with lineage."""


@model.command("list")
@json_option
def model_list(as_json: bool) -> None:
    """List models."""
    from hpc_gateway.gateway.display import human_time, print_json, print_table

    rows = synced_gateway().store("model").collections()
    if as_json:
        print_json(rows)
    else:
        print_table([(r["name"], r["versions"], f"v{r['latest']}", human_time(r["updated"]))
                     for r in rows], ["NAME", "VERSIONS", "LATEST", "UPDATED"])


@model.command("versions")
@click.argument("name")
@json_option
def model_versions(name: str, as_json: bool) -> None:
    """List the versions of a model."""
    print_versions(synced_gateway().store("model").versions(name), as_json)


@model.command("show")
@click.argument("ref")
@json_option
def model_show(ref: str, as_json: bool) -> None:
    """Show a model version and its lineage: NAME (latest) or NAME@vN."""
    from hpc_gateway.gateway.specs import parse_version_ref

    print_version(synced_gateway().store("model").resolve(parse_version_ref(ref, "model")), as_json)


@model.command("files")
@click.argument("ref")
@json_option
def model_files(ref: str, as_json: bool) -> None:
    """List the files of a model version."""
    from hpc_gateway.gateway.display import human_size, print_json, print_table
    from hpc_gateway.gateway.specs import parse_version_ref
    from hpc_gateway.gateway.trees import list_files

    version = synced_gateway().store("model").resolve(parse_version_ref(ref, "model"))
    files = list_files(version.path)
    if as_json:
        print_json([{"path": p, "bytes": s} for p, s in files])
    else:
        print_table([(p, human_size(s)) for p, s in files], ["PATH", "SIZE"])


@model.command("cat")
@click.argument("ref")
@click.argument("path")
def model_cat(ref: str, path: str) -> None:
    """Print one file of a model version."""
    from hpc_gateway.gateway.models import open_model_file

    with open_model_file(synced_gateway(), ref, path) as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            sys.stdout.buffer.write(chunk)


@model.command("download")
@click.argument("ref")
@click.option("-o", "--output", "output", required=True, type=click.Path(path_type=Path),
              help="The .tar.gz to write.")
def model_download(ref: str, output: Path) -> None:
    """Write a model version as a .tar.gz."""
    from hpc_gateway.gateway.display import human_size
    from hpc_gateway.gateway.models import download_model

    size = download_model(synced_gateway(), ref, output)
    click.echo(f"wrote {output} ({human_size(size)})")
