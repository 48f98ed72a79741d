"""Ingest: read spool files into the database and finish their jobs.

A spool file is trusted only for its own job: it must name this home and the job's Slurm
id (a job still SUBMITTING is adopted by it). A file that names another home, an unknown
job or another Slurm job is put aside with a warning and changes nothing, and so is a
file that can never be a record (too large, not UTF-8, JSON that is no record). A file
that cannot be read yet (half-written on a network filesystem, a passing I/O error) stays
where it is and is tried again by the next command (by the watcher with a backoff:
spool/retry.py); one still unreadable :data:`SETTLE_SECONDS` after it was last written
is put aside too. `gw doctor` names both. A job whose end was not clean (a signal, an
interrupted trap) takes its final state from Slurm.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from hpc_gateway.gateway.context import Gateway
from hpc_gateway.gateway.errors import SlurmError
from hpc_gateway.gateway.job_model import ACTIVE, Job, state_from_slurm
from hpc_gateway.spool.finish import failure_reason, finish_job
from hpc_gateway.spool.format import (
    SpoolFileRefused,
    SpoolFormatError,
    SpoolRecord,
    read_record,
)
from hpc_gateway.spool.layout import pending_spool_files, set_aside, spool_lock
from hpc_gateway.spool.report import IngestReport
from hpc_gateway.spool.tasks import base_slurm_id, ingest_task

if TYPE_CHECKING:
    from hpc_gateway.spool.retry import RetryBook

# How long a job whose end was not clean waits for Slurm's accounting to hold any record
# of it before the spool file's own word is taken (a cluster without accounting).
ACCOUNTING_GRACE_SECONDS = 120
# How long after its last write a spool file may stay unreadable (another host's write not
# visible in full yet: NFS caches attributes for up to a minute) before it is put aside.
SETTLE_SECONDS = 120


def warn(message: str) -> None:
    """One warning line on stderr."""
    print(f"gw: warning: {message}", file=sys.stderr)


def ingest_spool(gw: Gateway, wait: bool = True, book: RetryBook | None = None
                 ) -> IngestReport:
    """Ingest every pending spool file. With ``wait`` False, return at once (with
    ``busy`` set) when another process is ingesting: it will finish the work. With a
    ``book`` (the watcher's), a file kept for a retry is read again only when due, and
    reported in ``retry`` only the first time it fails unchanged."""
    report = IngestReport()
    pending = pending_spool_files(gw.layout.spool)
    if book is not None:
        book.forget_missing(pending)
        pending = [path for path in pending if book.due(path)]
    if not pending:
        return report
    with spool_lock(gw.layout.spool, wait) as held:
        if held:
            _ingest_all(gw, report, pending, book)
        else:
            report.busy = True
    return report


def _keep_for_retry(report: IngestReport, book: RetryBook | None, path: Path,
                    why: str) -> None:
    if book is None or book.failed(path):
        report.retry.append(f"{path.name}: {why}")


def _put_aside(report: IngestReport, path: Path, why: str, book: RetryBook | None) -> None:
    set_aside(path, "aside")
    report.put_aside.append(f"{path.name}: {why}")
    if book is None:  # a one-shot command says so; the watcher logs its report itself
        warn(f"spool file {path.name} put aside in spool/aside/: {why}")


def _ingest_all(gw: Gateway, report: IngestReport, pending: list[Path],
                book: RetryBook | None) -> None:
    waiting: dict[str, tuple[Job, SpoolRecord, Path]] = {}
    for path in pending:
        try:
            record = read_record(path)
        except FileNotFoundError:
            continue  # another ingester took it
        except SpoolFileRefused as exc:
            _put_aside(report, path, str(exc), book)
            continue
        except (OSError, SpoolFormatError) as exc:
            try:
                age = time.time() - path.stat().st_mtime
            except OSError:
                continue
            if age > SETTLE_SECONDS and isinstance(exc, SpoolFormatError):
                _put_aside(report, path, f"still unreadable {age:.0f} s after it was "
                           f"written: {exc}", book)
            else:
                _keep_for_retry(report, book, path, str(exc))
            continue
        try:
            _ingest_one(gw, path, record, report, waiting, book)
        except (OSError, sqlite3.OperationalError) as exc:
            # A passing fault (an I/O error, a full disk, a locked database): the file
            # stays, and every step of the harvest is safe to run again.
            _keep_for_retry(report, book, path, str(exc))
            if book is None:
                warn(f"spool file {path.name} will be retried: {exc}")
    if waiting:
        _finish_from_accounting(gw, waiting, report, book)


def _ingest_one(gw: Gateway, path: Path, record: SpoolRecord, report: IngestReport,
                waiting: dict[str, tuple[Job, SpoolRecord, Path]],
                book: RetryBook | None = None) -> None:
    if record.render is not None:
        # A run of a rendered script: its job is recorded the first time it is seen.
        job = gw.jobs.adopt_run(record.render, record.slurm_job_id, "RUNNING",
                                gw.layout.jobs) if record.slurm_job_id else None
    else:
        job = gw.jobs.find(record.job_id)
    problem = _mismatch(gw, job, record)
    if problem:
        _put_aside(report, path, problem, book)
        return
    assert job is not None
    if job.slurm_job_id is None and record.slurm_job_id:
        gw.jobs.attach_slurm_id(job.id, base_slurm_id(record.slurm_job_id), "RUNNING")
        job = gw.jobs.get(job.id)
    if record.task is not None or job.kind == "sweep":
        ingest_task(gw, path, record, job, report)
        return
    if not job.active:
        set_aside(path, "done")
        return
    facts = {"exit_code": record.exit_code, "node": record.node or job.node,
             "started": record.started, "ended": record.ended}
    if record.clean and record.exit_code == 0:
        state, reason = "COMPLETED", ""
    elif record.clean and record.exit_code < 128:
        state, reason = "FAILED", failure_reason(record.exit_code)
    else:
        # A signal or an interrupted end: Slurm knows better (cancelled, timeout, OOM).
        gw.jobs.note(job.id, **facts)
        waiting[job.slurm_job_id or ""] = (job, record, path)
        return
    if finish_job(gw, job, state, reason, record, **facts):
        report.finished.append(job.id)
    set_aside(path, "done")


def _mismatch(gw: Gateway, job: Job | None, record: SpoolRecord) -> str:
    """Why this record may not touch this job ("" when it may)."""
    if record.home_id and record.home_id != gw.home_id:
        return f"written for home {record.home_id}, not this home ({gw.home_id})"
    if job is None:
        if record.render is not None:
            return f"no rendered script {record.render} in this database"
        return f"no job {record.job_id} in this database"
    if job.slurm_job_id and record.slurm_job_id and \
            base_slurm_id(record.slurm_job_id) != job.slurm_job_id:
        return (f"written by Slurm job {record.slurm_job_id}, but job {job.id} is Slurm job "
                f"{job.slurm_job_id}")
    return ""


def _finish_from_accounting(gw: Gateway, waiting: dict[str, tuple[Job, SpoolRecord, Path]],
                            report: IngestReport, book: RetryBook | None = None) -> None:
    """Jobs whose end was a signal or not clean: their final state from ``sacct``."""
    try:
        accounting = gw.slurm.query_finished(waiting)
    except SlurmError as exc:
        accounting = {}
        warn(f"could not ask Slurm's accounting how jobs ended: {exc}")
    for slurm_id, (job, record, path) in waiting.items():
        said = accounting.get(slurm_id)
        slurm_state = state_from_slurm(said.slurm_state) if said else "UNKNOWN"
        old = record.ended is None or time.time() - record.ended > ACCOUNTING_GRACE_SECONDS
        if slurm_state in ACTIVE and (said is not None or not old):
            # Slurm still runs it (a killed slurmstepd), or has not written the end yet.
            _keep_for_retry(report, book, path, "Slurm has not recorded the end yet")
            continue
        state, reason = _final_state(record, slurm_state, said.slurm_state if said else "")
        facts = {"exit_code": record.exit_code, "node": record.node or job.node,
                 "started": record.started, "ended": record.ended}
        if finish_job(gw, job, state, reason, record, **facts):
            report.finished.append(job.id)
        set_aside(path, "done")


def _final_state(record: SpoolRecord, slurm_state: str, slurm_words: str) -> tuple[str, str]:
    """The final state of a job whose end the spool file alone does not settle."""
    if slurm_state in ("CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL"):
        return slurm_state, f"Slurm: {slurm_words}"
    if record.clean:
        return "FAILED", failure_reason(record.exit_code)
    words = f"; Slurm: {slurm_words}" if slurm_words else "; Slurm has no record of its end"
    return "FAILED", (f"the job's end was interrupted before its command returned (exit code "
                      f"{record.exit_code}){words}")
