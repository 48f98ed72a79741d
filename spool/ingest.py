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

from gateway.common.errors import SlurmError
from gateway.context import Gateway
from gateway.jobs.end import EndDecision, decide_end
from gateway.jobs.model import Job
from gateway.jobs.shapes import shape_of
from spool.accounting import base_slurm_id, final_records
from spool.format import (
    SpoolFileRefused,
    SpoolFormatError,
    SpoolRecord,
    read_record,
)
from spool.layout import pending_spool_files, set_aside, spool_lock
from spool.report import IngestReport

if TYPE_CHECKING:
    from gateway.jobs.values import Unit
    from spool.retry import RetryBook

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
    waiting: dict[str, tuple[Job, Unit, SpoolRecord, Path]] = {}
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
                waiting: dict[str, tuple[Job, Unit, SpoolRecord, Path]],
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
    shape = shape_of(job)
    unit = shape.unit_of_record(gw, job, record)
    if isinstance(unit, str):
        _put_aside(report, path, unit, book)
        return
    if not unit.active:
        set_aside(path, "done")
        return
    end = decide_end(record, None, time.time(), slurm_asked=False)
    if end.needs_slurm:
        waiting[unit.slurm_id or record.slurm_job_id] = (job, unit, record, path)
        return
    _end(gw, job, unit, end, record, report)
    set_aside(path, "done")


def _end(gw: Gateway, job: Job, unit: Unit, end: EndDecision, record: SpoolRecord,
         report: IngestReport) -> None:
    """Record a unit's decided end; report the unit (one of many) and the job."""
    facts = {"exit_code": record.exit_code, "node": record.node, "started": record.started,
             "ended": record.ended}
    if shape_of(job).end_unit(gw, job, unit, end, record, facts):
        report.finished.append(job.id)
    if unit.index is not None:
        report.finished_tasks.append((job.id, unit.index))


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


def _finish_from_accounting(gw: Gateway,
                            waiting: dict[str, tuple[Job, Unit, SpoolRecord, Path]],
                            report: IngestReport, book: RetryBook | None = None) -> None:
    """Units whose end was a signal or not clean: their final state from ``sacct``."""
    try:
        accounting = final_records(gw, waiting)
    except SlurmError as exc:
        accounting = {}
        warn(f"could not ask Slurm's accounting how jobs ended: {exc}")
    for slurm_id, (job, unit, record, path) in waiting.items():
        end = decide_end(record, accounting.get(slurm_id), time.time())
        if not end.final:
            _keep_for_retry(report, book, path, end.reason)
            continue
        _end(gw, job, unit, end, record, report)
        set_aside(path, "done")
