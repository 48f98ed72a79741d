"""Ingest: read spool files into the database and harvest the models of successful jobs."""

from __future__ import annotations

from typing import Any

from hpc_gateway.gateway import db
from hpc_gateway.gateway.context import Gateway
from hpc_gateway.gateway.errors import SlurmError
from hpc_gateway.gateway.slurm.adapter import TERMINAL
from hpc_gateway.spool.harvest import harvest_model
from hpc_gateway.spool.layout import pending_spool_files, read_spool_file, set_aside, spool_lock

SIGNAL_NAMES = {129: "SIGHUP", 130: "SIGINT", 137: "SIGKILL", 143: "SIGTERM"}


def failure_reason(exit_code: int) -> str:
    """Why a job with this exit status failed, in words."""
    if exit_code in SIGNAL_NAMES:
        return f"killed by {SIGNAL_NAMES[exit_code]} (exit code {exit_code})"
    return f"the command exited with code {exit_code}"


def ingest_spool(gw: Gateway) -> list[int]:
    """Ingest every pending spool file; returns the gateway ids of jobs that changed."""
    files = pending_spool_files(gw.layout.spool)
    if not files:
        return []
    changed: list[int] = []
    signalled: dict[str, int] = {}
    with spool_lock(gw.layout.spool):
        for path in pending_spool_files(gw.layout.spool):
            record = read_spool_file(path)
            job = None if record is None else gw.conn.execute(
                "SELECT * FROM jobs WHERE id = ?", (record["job_id"],)).fetchone()
            if job is None:
                set_aside(path, "bad")
                continue
            _apply(gw, job, record)
            if record["exit_code"] >= 128 and job["slurm_job_id"]:
                signalled[job["slurm_job_id"]] = job["id"]
            set_aside(path, "done")
            changed.append(job["id"])
    if signalled:
        _refine_from_accounting(gw, signalled)
    return changed


def _apply(gw: Gateway, job: Any, record: dict[str, Any]) -> None:
    exit_code = record["exit_code"]
    with db.transaction(gw.conn):
        gw.conn.execute(
            """UPDATE jobs SET exit_code = ?, node = ?, started = ?, ended = ? WHERE id = ?""",
            (exit_code, record.get("node") or job["node"], record.get("started"),
             record.get("ended"), job["id"]))
        if exit_code != 0:
            gw.conn.execute("UPDATE jobs SET state = 'FAILED', reason = ? WHERE id = ?",
                            (failure_reason(exit_code) + "; no model version made", job["id"]))
            return
    note = harvest_model(gw, job["id"], record)
    with db.transaction(gw.conn):
        gw.conn.execute("UPDATE jobs SET state = 'COMPLETED', reason = ? WHERE id = ?",
                        (note, job["id"]))


def _refine_from_accounting(gw: Gateway, signalled: dict[str, int]) -> None:
    """A job killed by a signal was usually cancelled or ran out of time: ask sacct which."""
    try:
        states = gw.slurm.accounting(signalled)
    except SlurmError:
        return
    with db.transaction(gw.conn):
        for slurm_id, state in states.items():
            if slurm_id in signalled and state.state in TERMINAL and state.state != "COMPLETED" \
                    and state.state != "FAILED":
                gw.conn.execute(
                    "UPDATE jobs SET state = ?, reason = ? WHERE id = ?",
                    (state.state, f"Slurm: {state.slurm_state}; no model version made",
                     signalled[slurm_id]))
