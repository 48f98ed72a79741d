"""`gw job ...`: submit, list, show, logs, cancel, script, outputs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.context import Gateway
    from gateway.jobs.model import Job
    from gateway.jobs.request import JobRequest
    from gateway.jobs.usage import Sample

import sys
from pathlib import Path

import click

from gateway.commands import json_option, open_gateway, synced_gateway
from gateway.commands.completion import JOB_ID
from gateway.commands.submit_options import (
    build_request,
    recipe_from_options,
    recipe_options,
)

# Job ids as SQLite stores them; a larger number is an error, not a traceback.
from gateway.jobs.quick_list import STATE_NAMES


@click.group()
def job() -> None:
    """Training jobs: submit, follow (logs, top), cancel, rerun, render, collect outputs."""


@job.command("submit", context_settings={"ignore_unknown_options": False})
@recipe_options
@click.option("--wait", is_flag=True, help="Wait for the job to end; exit 1 unless it "
                                           "completed.")
@click.option("--test-only", is_flag=True,
              help="Check everything and print Slurm's start estimate (sbatch --test-only); "
                   "nothing is submitted or recorded.")
@click.option("--for-portal", is_flag=True,
              help="Record and lay out the job but do not submit it: print (JSON) the sbatch "
                   "options and script a portal's own job uses (the Open OnDemand app of "
                   "`gw ood install`).")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@json_option
def job_submit(wait: bool, test_only: bool, for_portal: bool, command: tuple[str, ...],
               as_json: bool, **options: Any) -> None:
    """Submit COMMAND (after --), or --notebook NB.ipynb, as a Slurm job in the image.

    --algo and --image are required. In the container: /code is a private writable copy
    of the algorithm version (what the job leaves there are its outputs), /dataset the
    dataset version (read-only), /model an empty directory that becomes the next model
    version when the job exits 0. The working directory is /code and the image's
    environment applies.

    \b
    gw job submit --algo detectron2 --image detectron2:v1 --data coco --gpus 1 \\
        -- python /code/detectron2/tools/train_net.py --num-gpus 1
    gw job submit --algo project --image jupyter:v1 --notebook main.ipynb --param lr=0.01
    """
    from gateway.jobs.submit import submit_job, test_submission

    gw = open_gateway()
    request = build_request(gw, recipe_from_options(options), command)
    if test_only:
        from gateway.common.display import print_json
        from gateway.common.errors import InvalidInput

        if wait:
            raise InvalidInput("--test-only submits nothing: there is nothing to --wait for")

        said = test_submission(gw, request)
        if as_json:
            print_json(said)
        else:
            click.echo(f"Slurm would start it at {said['start']} on {said['nodes']} "
                       f"(partition {said['partition']}, {said['processors']} CPUs); "
                       "nothing was submitted")
        return
    if for_portal:
        print_portal_submission(gw, request, wait)
        return
    finish_submission(gw, submit_job(gw, request), wait, as_json)


def print_portal_submission(gw: Gateway, request: JobRequest, wait: bool) -> None:
    """Record and lay out the job for a portal to submit; print what it needs (JSON)."""
    from gateway.access.portal import portal_session
    from gateway.common.display import print_json
    from gateway.common.errors import InvalidInput
    from gateway.jobs.submit import prepare_job

    if wait:
        raise InvalidInput("--for-portal submits nothing: the portal does; no --wait")
    job, _script = prepare_job(gw, request)
    print_json(portal_session(job))


def finish_submission(gw: Gateway, submitted: Job, wait: bool, as_json: bool) -> None:
    """Print a submitted job, or with ``wait`` its end (exit 1 unless it completed)."""
    from gateway.jobs.shapes import shape_of

    if not wait:
        _print_job({**submitted.as_dict(), **shape_of(submitted).summary(gw, submitted)},
                   as_json, short=True)
        return
    from gateway.jobs.attempts import job_attempts

    final = _wait_for(gw, submitted.id)
    _print_job({**final.as_dict(), **shape_of(final).summary(gw, final),
                "attempts": job_attempts(gw, final)}, as_json)
    if final.state != "COMPLETED":
        sys.exit(1)


def _wait_for(gw: Gateway, job_id: int, poll: float = 1.0) -> Job:
    import time

    from spool.sync import sync_state

    delay = poll
    while True:
        sync_state(gw, quiet=True)
        job_info = gw.jobs.get(job_id)
        if not job_info.active:
            return job_info
        time.sleep(delay)
        delay = min(delay * 1.5, 10.0)


def _print_job(job_info: dict[str, Any], as_json: bool, short: bool = False) -> None:
    from gateway.common.display import human_time, print_fields, print_json

    if as_json:
        print_json(job_info)
        return
    if short:
        click.echo(f"job {job_info['id']} submitted (Slurm job {job_info['slurm_job_id']}); "
                   f"follow it with: gw job logs {job_info['id']} -f")
        return
    print_fields([
        ("job", job_info["id"]), ("kind", job_info["kind"]), ("name", job_info["name"]),
        ("state", job_info["state"]),
        ("reason", job_info["reason"] or None), ("slurm job", job_info["slurm_job_id"]),
        ("node", job_info["node"] or None),
        *([("ranks", f"{job_info['ranks']} ({job_info['node_count']} nodes x "
                     f"{job_info['tasks_per_node']} tasks, launcher {job_info['launcher']})")]
          if job_info.get("ranks") else []),
        ("submitted", human_time(job_info["submitted"])),
        ("started", human_time(job_info["started"])), ("ended", human_time(job_info["ended"])),
        ("exit code", job_info["exit_code"]), ("algorithm", job_info["algo"]),
        ("image", f"{job_info['image']} ({job_info['image_digest']})"),
        ("dataset", job_info["dataset"]),
        ("command", " ".join(job_info["command"])),
        ("env", ", ".join(job_info["env"]) + " (values hidden)" if job_info["env"] else None),
        ("resources", ", ".join(f"{k}={v}" for k, v in job_info["resources"].items()
                                if v not in (None, "", False, 0) or k == "gpus")),
        ("runtime", job_info["runtime"]),
        ("model", job_info["model"] or f"(none yet; becomes {job_info['model_name']})"),
        *[(f"left in /model{'' if m['task'] is None else ' of task ' + str(m['task'])}",
           f"{m['path']} ({m['files']} files; no version: the job did not complete)")
          for m in job_info.get("model_left") or ()],
        ("recipe", job_info.get("recipe")), ("rerun of", job_info.get("rerun_of")),
        ("overrides", ", ".join(f"{k}={v}" for k, v in job_info["overrides"].items())
         if job_info.get("overrides") else None),
        ("set", ", ".join(f"{k}={v}" for k, v in job_info["set"].items())
         if job_info.get("set") else None),
        ("used", _usage_text(job_info.get("usage"))),
        ("job dir", job_info["job_dir"]), ("script", job_info["script"]),
        ("log", job_info["log"]),
    ])
    if job_info.get("attempts"):
        from gateway.common.display import print_table

        click.echo(f"\nattempts (--restarts {job_info['resources'].get('restarts')}):")
        print_table([(*([a["task"]] if a["task"] is not None else []), a["attempt"],
                      a["node"] or None, human_time(a["started"]), human_time(a["ended"]),
                      a["end"] if a["end"] is not None else "running")
                     for a in job_info["attempts"]],
                    [*(["TASK"] if job_info["attempts"][0]["task"] is not None else []),
                     "ATTEMPT", "NODE", "STARTED", "ENDED", "END"])
    if job_info.get("tasks"):
        from gateway.common.display import print_table

        states = ", ".join(f"{n} {s}" for s, n in sorted(job_info["task_states"].items()))
        click.echo(f"\nsweep of {job_info['task_count']} tasks ({states}):")
        print_table([(t["task"], " ".join(f"{k}={v}" for k, v in t["params"].items()),
                      t["state"], t["exit_code"], t["model"], t["reason"] or None)
                     for t in job_info["tasks"]],
                    ["TASK", "PARAMS", "STATE", "EXIT", "MODEL", "REASON"])


def _usage_text(usage: dict | None) -> str | None:
    from gateway.common.display import human_size

    if not usage or all(v is None for v in usage.values()):
        return None
    parts = []
    if usage.get("max_rss_bytes") is not None:
        parts.append(f"peak memory {human_size(usage['max_rss_bytes'])}")
    if usage.get("cpu_seconds") is not None:
        parts.append(f"CPU time {usage['cpu_seconds']:.1f} s")
    if usage.get("elapsed_seconds") is not None:
        parts.append(f"elapsed {usage['elapsed_seconds']:.0f} s")
    return ", ".join(parts) + " (Slurm accounting)"


@job.command("list")
@click.option("--state", "states", multiple=True,
              type=click.Choice(STATE_NAMES, case_sensitive=False),
              help="Only jobs in this state (repeatable).")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="At most this many, newest first.")
@json_option
def job_list(states: tuple[str, ...], limit: int | None, as_json: bool) -> None:
    """List jobs, newest first.

    \b
    gw job list --state RUNNING --limit 20
    gw job list --json | jq '.[] | select(.state == "FAILED") | .id'
    """
    from gateway.jobs.quick_list import print_job_list

    print_job_list(synced_gateway(), tuple(states), limit, as_json)


@job.command("show")
@click.argument("job_id", type=JOB_ID)
@json_option
def job_show(job_id: int, as_json: bool) -> None:
    """Show a job: state, Slurm id, node, times, exit code, resources, versions, files."""
    from gateway.jobs.actions import get_job
    from gateway.jobs.attempts import job_attempts, model_left
    from gateway.jobs.shapes import shape_of

    gw = synced_gateway()
    shown = get_job(gw, job_id)
    _print_job({**shown.as_dict(), **shape_of(shown).summary(gw, shown),
                "usage": _accounted_usage(gw, shown), "attempts": job_attempts(gw, shown),
                "model_left": model_left(gw, shown)}, as_json)


def _accounted_usage(gw: Gateway, shown: Job) -> dict[str, Any] | None:
    """What Slurm's accounting says the job used (None before it started, or when Slurm
    does not answer: then one warning line)."""
    from gateway.common.errors import SlurmError

    if shown.slurm_job_id is None or shown.state in ("SUBMITTING", "PENDING"):
        return None
    try:
        return dict(gw.slurm.usage(shown.slurm_job_id))
    except SlurmError as exc:
        click.echo(f"gw: warning: no usage from Slurm's accounting ({exc})", err=True)
        return None


@job.command("script")
@click.argument("job_id", type=JOB_ID)
def job_script(job_id: int) -> None:
    """Print the exact sbatch script that was submitted."""
    from gateway.jobs.actions import get_job

    click.echo(get_job(open_gateway(), job_id).script_path.read_text(), nl=False)


@job.command("logs")
@click.argument("job_id", type=JOB_ID)
@click.option("--follow", "-f", is_flag=True, help="Keep printing until the job ends.")
@click.option("--task", type=click.IntRange(min=0), default=None,
              help="A sweep's task (default 0), or a gang's rank (default: every rank, "
                   "each line prefixed by its rank).")
def job_logs(job_id: int, follow: bool, task: int | None) -> None:
    """Print the job's output (stdout and stderr); -f follows it until the job ends.

    Following reads the file twice a second and watches for the job's own spool file;
    Slurm is asked at most every 15 s (for an end that writes no spool file).
    """
    import time

    from gateway.jobs.actions import get_job, log_path
    from spool.layout import spool_file
    from spool.sync import sync_state

    gw = synced_gateway()
    path = log_path(gw, get_job(gw, job_id), task)
    ended_file = spool_file(gw.layout.spool, job_id)
    position = 0
    next_sync = time.monotonic() + 15
    while True:
        if path.exists():
            with path.open("rb") as handle:
                handle.seek(position)
                chunk = handle.read()
                position += len(chunk)
                sys.stdout.buffer.write(chunk)
                sys.stdout.flush()
        if not follow:
            return
        if ended_file.exists() or time.monotonic() > next_sync:
            sync_state(gw, quiet=True)
            next_sync = time.monotonic() + 15
        if not get_job(gw, job_id).active:
            if path.exists() and path.stat().st_size > position:
                continue
            return
        time.sleep(0.5)


@job.command("cancel")
@click.argument("job_id", type=JOB_ID)
@json_option
def job_cancel(job_id: int, as_json: bool) -> None:
    """Cancel a pending or running job (scancel)."""
    from gateway.common.display import print_json
    from gateway.jobs.actions import cancel_job

    job_info = cancel_job(synced_gateway(), job_id)
    if as_json:
        print_json(job_info.as_dict())
    else:
        click.echo(f"cancelled job {job_id} (Slurm job {job_info.slurm_job_id})")


@job.command("outputs")
@click.argument("job_id", type=JOB_ID)
@click.option("-o", "--output", "output", required=True, type=click.Path(path_type=Path),
              help="The .tar.gz to write.")
def job_outputs(job_id: int, output: Path) -> None:
    """Pack what the job left in /code, its log and its script into a .tar.gz."""
    from gateway.common.display import human_size
    from gateway.jobs.actions import get_job, write_outputs

    gw = synced_gateway()
    size = write_outputs(gw, get_job(gw, job_id), output)
    click.echo(f"wrote {output} ({human_size(size)})")


@job.command("rerun")
@click.argument("job_id", type=JOB_ID)
@recipe_options
@click.option("--wait", is_flag=True, help="Wait for the job to end; exit 1 unless it "
                                           "completed.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@json_option
def job_rerun(job_id: int, wait: bool, command: tuple[str, ...], as_json: bool,
              **options: Any) -> None:
    """Submit the exact recipe of job JOB_ID again: the same algorithm and dataset
    versions, the same image (by digest, even if its tag moved since), command, resources
    and environment. Options given here override it; a COMMAND after -- replaces the
    command. A sweep is run again as a whole. The new job records what it reran."""
    from dataclasses import replace

    from gateway.jobs.actions import get_job
    from gateway.jobs.kinds import kind_of
    from gateway.jobs.recipes import exact_recipe, overlay
    from gateway.jobs.shapes import shape_of
    from gateway.jobs.submit import submit_job

    gw = open_gateway()
    earlier = get_job(gw, job_id)
    base, base_command = exact_recipe(earlier)
    overrides = recipe_from_options(options)
    provenance = {"rerun_of": job_id,
                  "overrides": {**overrides, **({"command": list(command)} if command else {})}}
    shape = shape_of(earlier)
    shape_extra = shape.rerun_extra(earlier, command)
    request = kind_of(earlier).rerun_request(
        earlier, build_request(gw, overlay(base, overrides), command or base_command,
                               origin="rerun", provenance=provenance))
    submitted = submit_job(gw, replace(request, shape=shape.reruns_as,
                                       extra={**request.extra, **shape_extra}))
    finish_submission(gw, submitted, wait, as_json)


@job.command("render")
@recipe_options
@click.option("-o", "--output", "output", type=click.Path(path_type=Path), default=None,
              help="Write the script to this file (default: print it).")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def job_render(output: Path | None, command: tuple[str, ...], **options: Any) -> None:
    """Print a self-contained sbatch script for COMMAND, to keep, edit around and run with
    plain `sbatch` as often as you like.

    Checked as a submission is (stores, image, partitions), but nothing is submitted.
    Each run makes its own directory under the home's jobs/ with a private copy of /code,
    and becomes a job in `gw job list` (origin sbatch) when gw first sees it in the queue
    or at its end; its /model is harvested like any job's. Edit around the container
    lines, not inside them: the #SBATCH lines, modules and set-up are yours.
    """
    from gateway.jobs.rendered_scripts import render_job

    gw = open_gateway()
    if output is not None:
        from gateway.common.atomic import check_output_path

        check_output_path(output, "script file")
    request = build_request(gw, recipe_from_options(options), command, origin="sbatch")
    render_id, text = render_job(gw, request)
    if output is None:
        click.echo(text, nl=False)
        return
    from gateway.common.atomic import write_atomic

    write_atomic(output, text, mode=0o700)
    click.echo(f"wrote {output} (render {render_id}): run it with sbatch {output}", err=True)


@job.command("top")
@click.argument("job_id", type=JOB_ID)
@click.option("--follow", "-f", is_flag=True, help="Refresh until the job ends.")
@click.option("--task", type=click.IntRange(min=0), default=None,
              help="A sweep's task (default 0) or a gang's rank (default: every rank).")
@json_option
def job_top(job_id: int, follow: bool, task: int | None, as_json: bool) -> None:
    """Show a job's load: CPU and memory of its processes and, on GPU nodes, GPU use,
    sampled inside the job every 2 s (no site monitoring needed). While it runs: the
    latest sample; after it ended: the recorded history (peak memory, mean CPU and GPU)
    with a small plot. A job on several nodes shows each rank on its node."""
    import time

    from gateway.jobs.actions import get_job
    from gateway.jobs.usage import load_units, read_unit_samples, summary
    from spool.sync import sync_state

    gw = synced_gateway()
    current = get_job(gw, job_id)
    load_units(gw, current, task)  # units that exist, of a started job
    while True:
        units = load_units(gw, current, task)
        per_unit = [(unit, read_unit_samples(current, unit)) for unit in units]
        shown_units = [{"task": unit.index, "label": unit.label, **summary(samples),
                        "history": [s.as_dict() for s in samples]}
                       for unit, samples in per_unit]
        shown = {"id": current.id, "state": current.state, **shown_units[0]}
        shown["task"] = task
        if len(shown_units) > 1:
            shown["units"] = shown_units
        if as_json:
            from gateway.common.display import print_json

            if not follow or not current.active:
                print_json(shown)
        else:
            for (_unit, samples), one in zip(per_unit, shown_units, strict=True):
                _print_top({**shown, **one, "task": task}, samples)
        if not follow or not current.active:
            return
        time.sleep(2)
        sync_state(gw, quiet=True)
        current = get_job(gw, job_id)


def _print_top(shown: dict[str, Any], samples: list[Sample]) -> None:
    from gateway.common.display import human_size
    from gateway.jobs.usage import sparkline

    unit = (f" {shown['label']}" if shown.get("label")
            else f" task {shown['task']}" if shown["task"] is not None else "")
    head = f"job {shown['id']}{unit} ({shown['state']})"
    if not samples:
        click.echo(f"{head}: no samples yet (the first comes a few seconds after the "
                   "command starts)")
        return
    last = samples[-1]
    gpu = (f"   GPU {last.gpu_percent:.0f}%  {last.gpu_mem_mib} MiB"
           if last.gpu_percent is not None else "")
    click.echo(f"{head}: now CPU {last.cpu_percent:.0f}%  memory "
               f"{human_size(last.rss_kib * 1024)}{gpu}")
    gpu_mean = (f", mean GPU {shown['mean_gpu_percent']}%"
                if shown["mean_gpu_percent"] is not None else "")
    click.echo(f"  {shown['samples']} samples: peak memory "
               f"{human_size(shown['peak_rss_bytes'])}, mean CPU "
               f"{shown['mean_cpu_percent']}%, peak CPU {shown['peak_cpu_percent']:.0f}%"
               f"{gpu_mean}")
    click.echo(f"  CPU    {sparkline([s.cpu_percent for s in samples])}")
    click.echo(f"  memory {sparkline([float(s.rss_kib) for s in samples])}")
    if any(s.gpu_percent is not None for s in samples):
        click.echo(f"  GPU    {sparkline([s.gpu_percent or 0.0 for s in samples])}")
