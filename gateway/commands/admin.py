"""`gw spool sync`, `gw doctor`, `gw config`."""

from __future__ import annotations

import sys

import click

from gateway.commands import json_option, open_gateway


@click.group()
def spool() -> None:
    """The spool: job end states written on compute nodes."""


@spool.command("sync")
@json_option
def spool_sync(as_json: bool) -> None:
    """Ingest spool files (harvesting models) and reconcile active jobs with Slurm."""
    from gateway.common.display import print_json
    from spool.sync import sync_state

    report = sync_state(open_gateway())
    if as_json:
        print_json({"finished": report.finished, "put_aside": report.put_aside,
                    "retry": report.retry})
    else:
        click.echo(f"finished {len(report.finished)} job(s) from spool files"
                   + (f"; {len(report.retry)} file(s) to retry later" if report.retry else ""))


@spool.command("watch")
@click.option("--poll", type=click.FloatRange(min=0.1), default=None,
              help="Scan every SECONDS instead of inotify (the default, every 2 s, on NFS, "
                   "Lustre, GPFS and FUSE filesystems, where writes made elsewhere never "
                   "reach inotify).")
def spool_watch(poll: float | None) -> None:
    """Harvest finished jobs as their spool files appear (runs until SIGTERM).

    Rescans everything at start, logs one line per finished job or problem on stderr, and
    checks unfinished jobs with Slurm every 30 s (backing off while slurmctld is away).
    Keep it running with a systemd user unit or a crontab @reboot line (docs/watcher.md).
    """
    from spool.watcher import watch

    watch(open_gateway(), poll)


@click.command()
@json_option
def doctor(as_json: bool) -> None:
    """Check Slurm, the container runtime, FUSE and paths; say what to fix."""
    from gateway.common.display import print_json
    from gateway.doctor import run_checks

    checks = run_checks(open_gateway())
    if as_json:
        print_json([c.as_dict() for c in checks])
    else:
        for check in checks:
            mark = "ok  " if check.ok else "FAIL"
            click.echo(f"[{mark}] {check.name}: {check.detail}")
            if not check.ok and check.fix:
                click.echo(f"       fix: {check.fix}")
    if not all(c.ok for c in checks):
        sys.exit(1)


@click.command("config")
@json_option
def config_cmd(as_json: bool) -> None:
    """Print the resolved configuration and where each value came from."""
    from gateway.common.display import print_json, print_table
    from gateway.home.config import KEYS, load_config

    config = load_config()
    if as_json:
        print_json(config.values)
    else:
        print_table([(k, config.values[k], config.sources[k], KEYS[k][1][:60]) for k in KEYS],
                    ["KEY", "VALUE", "FROM", "MEANING"])
