"""`gw ood install`: the Open OnDemand apps."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import click


@click.group("ood")
def ood() -> None:
    """Open OnDemand: apps that start gateway notebooks and training jobs from the portal."""


def _this_gw() -> str:
    """The absolute path of the gw running now (what the apps will run as each user)."""
    argv0 = sys.argv[0]
    if os.path.basename(argv0) == "gw" and os.path.isfile(argv0):
        return os.path.abspath(argv0)
    return shutil.which("gw") or os.path.abspath(argv0)


@ood.command("install")
@click.argument("dest", type=click.Path(path_type=Path))
@click.option("--cluster", required=True,
              help="The OnDemand cluster the apps submit to (clusters.d/NAME.yml).")
@click.option("--gw", "gw_path", default=None,
              help="The gw the portal runs as each user (default: this one).")
@click.option("--hours", type=click.IntRange(1), default=2, show_default=True,
              help="The form's default session length (the web platform's notebooks: 2).")
@click.option("--max-hours", type=click.IntRange(1), default=72, show_default=True,
              help="The longest session the form offers.")
@click.option("--force", is_flag=True, help="Replace apps already there.")
def ood_install(dest: Path, cluster: str, gw_path: str | None, hours: int, max_hours: int,
                force: bool) -> None:
    """Write two batch_connect apps under DEST: gw_notebook (JupyterLab as a gateway
    notebook) and gw_training (a training job from a form), with a README for the site.

    \b
    sudo gw ood install /var/www/ood/apps/sys --cluster mycluster
    gw ood install ~/ondemand/dev --cluster mycluster      # a sandbox, to try it first
    """
    from gateway.access.ondemand import install_apps

    for app in install_apps(dest, cluster=cluster, gw=gw_path or _this_gw(), hours=hours,
                            max_hours=max_hours, force=force):
        click.echo(f"wrote {app}")
