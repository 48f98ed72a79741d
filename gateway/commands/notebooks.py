"""`gw notebook ...`: JupyterLab as a time-limited Slurm job whose edits become versions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.context import Gateway

import sys

import click

from gateway.commands import json_option, open_gateway, synced_gateway
from gateway.commands.completion import JOB_ID, complete_flavors


@click.group()
def notebook() -> None:
    """Notebooks: JupyterLab over a draft of an algorithm, for a limited time.

    \b
    gw notebook start --image jupyter:v1 --algo detectron2 --data coco --wait
    gw notebook show 12          # URL with token, ssh tunnel command, time left
    gw notebook save 12          # the draft becomes the next algorithm version now
    gw notebook stop 12 --wait   # ... and again when the notebook ends
    """


@notebook.command("start")
@click.option("--image", "image_name", required=True, help="Image NAME:TAG with JupyterLab.")
@click.option("--algo", required=True, help="Algorithm NAME or NAME@vN: /code is a draft of it.")
@click.option("--data", default=None, help="Dataset NAME or NAME@vN, read-only at /dataset.")
@click.option("--name", default=None, help="Job name (default: notebook-ALGO).")
@click.option("--time", "time_limit", default=None,
              help="Time limit, D-HH:MM:SS (default: the site's notebook_time, 2 hours).")
@click.option("--flavor", default=None, shell_complete=complete_flavors,
              help="A resource shape the site defines (`gw flavors`); options given override "
                   "it.")
@click.option("--cpus", type=int, default=None, help="CPUs (default from config).")
@click.option("--gpus", default=None, help="GPUs, N or TYPE:N.")
@click.option("--mem", default=None, help="Memory, e.g. 16G (shm is added on top).")
@click.option("--shm", default=None, help="Size of the private /dev/shm.")
@click.option("--partition", default=None, help="Slurm partition.")
@click.option("--proxy-prefix", default=None,
              help="Serve under PREFIX/<node>/<port>/ for a reverse proxy (Open OnDemand: "
                   "/node); default from notebook_proxy_prefix, else at /.")
@click.option("--for-portal", is_flag=True,
              help="Record and lay out the notebook but do not submit it: print (JSON) the "
                   "sbatch options, script and token a portal's own job uses (the Open "
                   "OnDemand app of `gw ood install`).")
@click.option("--wait", is_flag=True, help="Return once the URL answers (exit 1 if the job "
                                           "ends first or --wait-timeout passes).")
@click.option("--wait-timeout", type=click.IntRange(min=1), default=600, show_default=True,
              help="Seconds --wait waits.")
@json_option
def notebook_start(image_name: str, algo: str, data: str | None, name: str | None,
                   time_limit: str | None, flavor: str | None, cpus: int | None,
                   gpus: str | None, mem: str | None, shm: str | None,
                   partition: str | None, proxy_prefix: str | None, for_portal: bool,
                   wait: bool, wait_timeout: int, as_json: bool) -> None:
    """Start JupyterLab in IMAGE with /code a writable draft of ALGO.

    JupyterLab always has a random token. When the notebook ends (`gw notebook stop`, its
    time limit, scancel) the draft becomes the next version of the algorithm if it
    changed; `gw notebook save` does it at any time.
    """
    from gateway.common.specs import check_image_name, parse_version_ref
    from gateway.jobs.notebooks import describe, notebook_resources, start_notebook

    gw = open_gateway()
    if for_portal and wait:
        raise click.UsageError("--wait does not go with --for-portal: the portal submits")
    resources = notebook_resources(gw, flavor=flavor, time=time_limit, cpus=cpus, gpus=gpus,
                                   mem=mem, shm=shm, partition=partition)
    job = start_notebook(gw, image=check_image_name(image_name),
                         algo=parse_version_ref(algo, "algorithm"),
                         data=parse_version_ref(data, "dataset") if data else None,
                         resources=resources, name=name,
                         proxy_prefix=(proxy_prefix if proxy_prefix is not None
                                       else str(gw.config["notebook_proxy_prefix"])),
                         submit=not for_portal)
    if for_portal:
        from gateway.access.portal import portal_session
        from gateway.common.display import print_json
        from gateway.jobs.kinds.notebook_drafts import TOKEN_VARIABLE

        print_json(portal_session(job, token=job.spec.env.get(TOKEN_VARIABLE, "")))
        return
    info = _wait_until_answering(gw, job.id, wait_timeout) if wait else describe(gw, job)
    _print_notebook(info, as_json)


def _wait_until_answering(gw: Gateway, job_id: int, timeout: int) -> dict[str, Any]:
    import time

    from gateway.common.errors import GatewayError
    from gateway.jobs.notebooks import answers, describe
    from spool.sync import sync_state

    deadline = time.monotonic() + timeout
    while True:
        sync_state(gw, quiet=True)
        job = gw.jobs.get(job_id)
        info = describe(gw, job)
        if not job.active:
            raise GatewayError(f"notebook {job_id} ended before it answered: {info['state']}"
                               f" ({job.reason or 'see gw job logs ' + str(job_id)})")
        if info["url"] and answers(info):
            return info
        if time.monotonic() > deadline:
            raise GatewayError(f"notebook {job_id} did not answer within {timeout} s (state "
                               f"{info['state']}); it keeps running: gw notebook show "
                               f"{job_id}")
        time.sleep(0.2 if info["state"] in ("STARTING", "RUNNING") else 0.5)


def _print_notebook(info: dict, as_json: bool) -> None:
    from gateway.common.display import human_time, print_fields, print_json

    if as_json:
        print_json(info)
        return
    left = info["time_left"]
    print_fields([
        ("notebook", info["id"]), ("state", info["state"]), ("reason", info["reason"] or None),
        ("algorithm", info["algo"]), ("image", info["image"]), ("dataset", info["data"]),
        ("node", info["node"]), ("url", info["url"]),
        ("tunnel", info["tunnel"] and f"{info['tunnel']}   then open {info['local_url']}"),
        ("ends", human_time(info["ends_at"]) if info["ends_at"] else None),
        ("time left", f"{left // 3600}h{left % 3600 // 60:02d}m" if left is not None else None),
        ("saved", ", ".join(info["saved_versions"]) or None), ("draft", info["draft"]),
    ])


@notebook.command("show")
@click.argument("job_id", type=JOB_ID)
@json_option
def notebook_show(job_id: int, as_json: bool) -> None:
    """Show a notebook: state, URL with token, tunnel command, time left, saved versions."""
    from gateway.jobs.notebooks import describe, get_notebook

    gw = synced_gateway()
    _print_notebook(describe(gw, get_notebook(gw, job_id)), as_json)


@notebook.command("list")
@json_option
def notebook_list(as_json: bool) -> None:
    """List notebooks, newest first."""
    from gateway.common.display import human_time, print_json, print_table
    from gateway.jobs.notebooks import describe, notebook_jobs

    gw = synced_gateway()
    rows = [describe(gw, job) for job in notebook_jobs(gw)]
    if as_json:
        print_json(rows)
    else:
        print_table([(r["id"], r["name"], r["state"], r["algo"], r["node"],
                      human_time(r["ends_at"]) if r["ends_at"] else None,
                      ", ".join(r["saved_versions"]) or None) for r in rows],
                    ["ID", "NAME", "STATE", "ALGO", "NODE", "ENDS", "SAVED"])


@notebook.command("save")
@click.argument("job_id", type=JOB_ID)
@json_option
def notebook_save(job_id: int, as_json: bool) -> None:
    """Save the draft now as the next algorithm version (the notebook keeps running)."""
    from gateway.common.display import print_json
    from gateway.jobs.kinds.notebook_drafts import save_draft
    from gateway.jobs.notebooks import get_notebook

    gw = open_gateway()
    version = save_draft(gw, get_notebook(gw, job_id))
    if as_json:
        print_json({"saved": version.ref if version else None})
    else:
        click.echo(f"saved {version.ref}" if version else "unchanged: no new version")


@notebook.command("stop")
@click.argument("job_id", type=JOB_ID)
@click.option("--wait", is_flag=True, help="Wait until it has ended and its code is saved.")
@json_option
def notebook_stop(job_id: int, wait: bool, as_json: bool) -> None:
    """Stop a notebook; its draft becomes the next algorithm version if it changed."""
    import time

    from gateway.jobs.actions import cancel_job
    from gateway.jobs.notebooks import describe, get_notebook
    from spool.sync import sync_state

    gw = synced_gateway()
    cancel_job(gw, get_notebook(gw, job_id).id)
    job = gw.jobs.get(job_id)
    while wait and job.active:
        time.sleep(1)
        sync_state(gw, quiet=True)
        job = gw.jobs.get(job_id)
    info = describe(gw, job)
    if as_json:
        _print_notebook(info, True)
    elif job.active:
        click.echo(f"stopping notebook {job_id}; `gw notebook show {job_id}` says when it "
                   "has ended and which version it saved")
    else:
        click.echo(f"notebook {job_id} {info['state']}: {info['reason'] or 'ended'}")
    if wait and info["state"] == "FAILED":
        sys.exit(1)
