"""`gw flavors`: the site's resource shapes, and how many of each fit now."""

from __future__ import annotations

import click

from gateway.commands import json_option, open_gateway


@click.command("flavors")
@json_option
def flavors_cmd(as_json: bool) -> None:
    """List the resource flavors (--flavor NAME) with what the cluster can give now:
    how many jobs of each shape the idle CPUs, memory and GPUs of its partition's nodes
    would take at once."""
    from gateway.common.display import print_json, print_table
    from gateway.home.flavors import available_now

    shown = available_now(open_gateway())
    if as_json:
        print_json(shown)
        return
    print_table([(f["name"], f["partition"] or "(default)",
                  f"{f['nodes']}x{f['tasks_per_node']}", f["cpus"], f["gpus"], f["mem"],
                  f["time"], f["fits_now"]) for f in shown],
                ["FLAVOR", "PARTITION", "NODESxTASKS", "CPUS/TASK", "GPUS/NODE", "MEM/NODE",
                 "TIME", "FIT NOW"])
