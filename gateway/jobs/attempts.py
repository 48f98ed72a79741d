"""The attempts of a resumable job (--restarts, docs/resume.md).

Each attempt of a unit appends its start and its end to ``attempts.jsonl`` in the unit's
directory (templates/sbatch/resume.sh.j2); an attempt whose node was lost writes no end.
Here they are read back as one list, for `gw job show` and the dashboard."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.context import Gateway
    from gateway.jobs.model import Job
    from gateway.jobs.values import Unit
    from gateway.slurm.adapter import SlurmJobState

ATTEMPTS_FILE = "attempts.jsonl"
MAX_ATTEMPT_LINES = 10_000   # a file grown past this is read no further
# How long after an attempt requeued itself its next attempt may be let start. slurmd
# revokes the old attempt's credential when the requeue reaches it and refuses a new
# credential made in the same second or earlier ("Job credential revoked": the job ends
# FAILED); the revoke comes a moment after the attempt's end line, later on a loaded node.
REQUEUE_SETTLE_SECONDS = 5


def read_attempts(directory: Path) -> list[dict[str, Any]]:
    """The attempts recorded in ``directory``, in order: ``attempt``, ``node``,
    ``started``, ``ended`` and ``end`` (how it ended, in words; None while it runs). A
    line that is not an attempt's (a torn write, an edit) is skipped."""
    try:
        lines = (directory / ATTEMPTS_FILE).read_text(errors="replace").splitlines()
    except OSError:
        return []
    attempts: dict[int, dict[str, Any]] = {}
    for line in lines[:MAX_ATTEMPT_LINES]:
        try:
            event = json.loads(line)
            number = int(event["attempt"])
            kind, when = str(event["event"]), int(event["time"])
        except (ValueError, KeyError, TypeError):
            continue
        entry = attempts.setdefault(number, {"attempt": number, "node": "", "started": None,
                                             "ended": None, "end": None})
        entry["node"] = str(event.get("node") or entry["node"])
        if kind == "start":
            entry["started"] = when
        elif kind == "end":
            entry["ended"], entry["end"] = when, str(event.get("end") or "")
    ordered = [attempts[n] for n in sorted(attempts)]
    for entry in ordered[:-1]:
        if entry["end"] is None:   # it never said: Slurm requeued it (a lost node)
            entry["end"] = "no end written (its node was lost, or Slurm stopped it)"
    return ordered


def release_requeue_delay(gw: Gateway, job: Job, unit: Unit, said: SlurmJobState) -> bool:
    """A resumable unit that Slurm requeued (after its time limit, a preemption or a lost
    node) waits out Slurm's requeue delay (two minutes, reason ``BeginTime``): let it start
    now, once its last attempt's end is REQUEUE_SETTLE_SECONDS old. Returns whether it was
    asked; a refusal is left to the delay."""
    import time

    from gateway.common.errors import SlurmError
    from gateway.jobs.model import state_from_slurm

    if (not int(job.spec.resources.get("restarts") or 0) or said.reason != "BeginTime"
            or state_from_slurm(said.slurm_state) != "PENDING" or unit.slurm_id is None):
        return False
    attempts = read_attempts(unit.directory)
    # Only after the job requeued itself: after a lost node (or a preemption) Slurm's delay
    # stays, as a relaunch on a node still aborting the old attempt is refused ("Job
    # credential revoked") and the job would end FAILED.
    if not attempts or not str(attempts[-1]["end"] or "").endswith(": requeued"):
        return False
    ended = attempts[-1]["ended"] or 0
    if time.time() - ended < REQUEUE_SETTLE_SECONDS:
        return False   # a later sync lets it start
    try:
        gw.slurm.start_now(unit.slurm_id)
    except SlurmError:
        return False
    return True


def model_left(gw: Gateway, job: Job, most: int = 10_000) -> list[dict[str, Any]]:
    """What an ended job's units left in their /model without becoming a version (a job
    whose restarts ran out ends TIMEOUT with its last checkpoint there): ``task``,
    ``path`` and ``files`` (counted up to ``most``)."""
    import os

    from gateway.jobs.shapes import shape_of

    if job.active:
        return []
    left = []
    for unit in shape_of(job).units(gw, job):
        if unit.model_ref or not unit.model.is_dir():
            continue
        files = 0
        for _root, _dirs, names in os.walk(unit.model):
            files += len(names)
            if files >= most:
                break
        if files:
            left.append({"task": unit.index, "path": str(unit.model), "files": files})
    return left


def job_attempts(gw: Gateway, job: Job) -> list[dict[str, Any]]:
    """Every attempt of every unit of ``job`` (``task``: the unit's index, None for a job
    of one unit); empty for a job that was not resumable."""
    from gateway.jobs.shapes import shape_of

    if not int(job.spec.resources.get("restarts") or 0):
        return []
    found: list[dict[str, Any]] = []
    for unit in shape_of(job).units(gw, job):
        found += [{"task": unit.index, **entry} for entry in read_attempts(unit.directory)]
    return found
