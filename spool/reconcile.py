"""Reconcile: ask Slurm about active jobs that have written no spool file yet.

One ``squeue`` call for all of them; one ``sacct`` call for those squeue no longer knows.
A job missing from squeue is not proof of success: only its spool file says that. If
slurmctld cannot be reached, the jobs' state is UNKNOWN, never FAILED.
"""

from __future__ import annotations

import time

from hpc_gateway.gateway import db
from hpc_gateway.gateway.context import Gateway
from hpc_gateway.gateway.errors import SlurmUnavailable
from hpc_gateway.gateway.slurm.adapter import ACTIVE, SlurmJobState
from hpc_gateway.spool.layout import spool_file

# A job Slurm calls finished gets this long to have its spool file show up (NFS delays).
SPOOL_GRACE_SECONDS = 60


# A submission whose `gw` process died before sbatch answered.
SUBMITTING_GRACE_SECONDS = 600


def reconcile(gw: Gateway) -> None:
    """Bring the states of active jobs up to date from squeue and sacct."""
    _fail_interrupted_submissions(gw)
    rows = gw.conn.execute(
        f"SELECT id, slurm_job_id, state FROM jobs WHERE state IN "
        f"({','.join('?' * len(ACTIVE))}) AND slurm_job_id IS NOT NULL", ACTIVE).fetchall()
    rows = [r for r in rows if not spool_file(gw.layout.spool, r["id"]).exists()]
    if not rows:
        return
    try:
        queue = gw.slurm.queue()
        gone = [r for r in rows if r["slurm_job_id"] not in queue
                or queue[r["slurm_job_id"]].state not in ACTIVE]
        accounting = gw.slurm.accounting(r["slurm_job_id"] for r in gone) if gone else {}
    except SlurmUnavailable as exc:
        with db.transaction(gw.conn):
            for row in rows:
                gw.conn.execute("UPDATE jobs SET state = 'UNKNOWN', reason = ? WHERE id = ?",
                                (f"Slurm unreachable: {exc.stderr or exc}"[:500], row["id"]))
        return
    with db.transaction(gw.conn):
        for row in rows:
            live = queue.get(row["slurm_job_id"])
            if live is not None and live.state in ACTIVE:
                _set_active(gw, row["id"], live)
            elif row["slurm_job_id"] in accounting:
                _set_finished(gw, row["id"], accounting[row["slurm_job_id"]])


def _fail_interrupted_submissions(gw: Gateway) -> None:
    cutoff = time.time() - SUBMITTING_GRACE_SECONDS
    stale = gw.conn.execute("SELECT id FROM jobs WHERE state = 'SUBMITTING' AND "
                            "slurm_job_id IS NULL AND submitted < ?", (cutoff,)).fetchall()
    if stale:
        with db.transaction(gw.conn):
            for row in stale:
                gw.conn.execute(
                    "UPDATE jobs SET state = 'FAILED', reason = ? WHERE id = ?",
                    ("the submission was interrupted before sbatch answered", row["id"]))


def _set_active(gw: Gateway, job_id: int, live: SlurmJobState) -> None:
    gw.conn.execute(
        "UPDATE jobs SET state = ?, node = ?, started = COALESCE(?, started), reason = ? "
        "WHERE id = ?",
        (live.state, live.node, live.start if live.state == "RUNNING" else None,
         live.reason if live.state == "PENDING" else "", job_id))


def _set_finished(gw: Gateway, job_id: int, final: SlurmJobState) -> None:
    if final.state in ACTIVE:
        _set_active(gw, job_id, final)
        return
    if final.state == "COMPLETED":
        # Success is only what the job's own spool file says; give it time to arrive.
        if final.end is not None and time.time() - final.end < SPOOL_GRACE_SECONDS:
            return
        reason = "Slurm says it completed, but the job wrote no end state (spool file)"
        state = "FAILED"
    else:
        state = final.state
        reason = f"Slurm: {final.slurm_state}; no model version made"
    gw.conn.execute(
        "UPDATE jobs SET state = ?, reason = ?, exit_code = ?, node = ?, "
        "started = COALESCE(started, ?), ended = ? WHERE id = ?",
        (state, reason, final.exit_code, final.node, final.start, final.end, job_id))
