"""The spool watcher: harvest finished jobs as their spool files appear.

`gw spool watch` runs this in the foreground (under systemd --user, or a crontab @reboot
line: docs/watcher.md). It rescans everything at start, so a watcher that was down misses
nothing, then waits for spool files:

- **inotify** (watchdog's observer) where the spool directory is local: a job's rename of
  its spool file into place wakes the watcher at once;
- **polling** on network filesystems (NFS, Lustre, GPFS, ...), where writes from compute
  nodes never reach inotify, or when ``--poll SECONDS`` says so.

Both paths call the same ingest (spool/ingest.py) and so give the same result. Between
files it reconciles unfinished jobs with Slurm, backing off while slurmctld does not
answer. It logs one line per finished job and per problem, and stops cleanly on SIGTERM.
Its registration file (``spool/.watchers/HOST.PID.json``, one per watcher, so that one
stopping never unregisters another) tells `gw doctor` that it runs. A spool file kept
for a retry is read again with a backoff (spool/retry.py) and logged once; the watcher
wakes only for writes and renames in the spool directory, never for its own reads.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.common.backoff import SLURM_MAX_SECONDS, doubled
from gateway.common.errors import SlurmError
from gateway.context import Gateway
from spool.retry import RetryBook

REGISTRATIONS = ".watchers"
DEFAULT_POLL_SECONDS = 2.0
RECONCILE_SECONDS = 30.0        # how often unfinished jobs are checked with Slurm
# watchdog's event types that mean a spool file may have been written or moved in.
WAKING_EVENTS = frozenset({"created", "modified", "moved", "closed"})


@dataclass(frozen=True)
class WatchMode:
    """How the watcher learns of new spool files."""

    polling: bool
    interval: float     # seconds between scans when polling; a safety rescan otherwise
    why: str


def choose_mode(spool_dir: Path, poll: float | None) -> WatchMode:
    """Polling when asked or when the spool lies on a network filesystem; else inotify."""
    from gateway.home.layout import filesystem_type, is_network_filesystem

    if poll is not None:
        return WatchMode(True, poll, "--poll")
    if is_network_filesystem(spool_dir):
        return WatchMode(True, DEFAULT_POLL_SECONDS,
                         f"{filesystem_type(spool_dir)}: inotify misses other hosts' writes")
    return WatchMode(False, 60.0, f"{filesystem_type(spool_dir)}: inotify")


def registration_path(spool_dir: Path, host: str | None = None, pid: int | None = None
                      ) -> Path:
    """Where a watcher (this process, by default) says that it runs."""
    return (spool_dir / REGISTRATIONS /
            f"{host or socket.gethostname()}.{pid if pid is not None else os.getpid()}.json")


def running_watchers(spool_dir: Path) -> list[dict[str, Any]]:
    """The registrations of the watchers that run: on this host those whose process
    lives (a dead one's file is removed), on other login nodes all (their pids cannot be
    checked from here)."""
    here = socket.gethostname()
    found = []
    for path in sorted((spool_dir / REGISTRATIONS).glob("*.json")):
        try:
            info = json.loads(path.read_text())
            if info.get("host") == here:
                os.kill(int(info["pid"]), 0)
        except ProcessLookupError:
            path.unlink(missing_ok=True)
            continue
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if isinstance(info, dict):
            found.append(info)
    return found


def running_watcher(spool_dir: Path) -> dict[str, Any] | None:
    """The registration of one watcher that runs (see :func:`running_watchers`), or None."""
    watchers = running_watchers(spool_dir)
    return watchers[0] if watchers else None


class SpoolWatcher:
    """Watches one home's spool directory until :meth:`stop`."""

    def __init__(self, gw: Gateway, mode: WatchMode,
                 log: Callable[[str], None] | None = None) -> None:
        self.gw = gw
        self.mode = mode
        self.log = log or _log_line
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.next_reconcile = 0.0
        self.backoff = RECONCILE_SECONDS
        self.retries = RetryBook()

    def stop(self) -> None:
        """Ask the loop to end (safe from a signal handler)."""
        self.stopping.set()
        self.wake.set()

    def run(self) -> None:
        """Rescan, then watch until stopped."""
        spool = self.gw.layout.spool
        self.gw.layout.ensure()
        self._register()
        observer = None if self.mode.polling else self._start_observer(spool)
        how = f"polling every {self.mode.interval:g} s" if observer is None else "inotify"
        self.log(f"watching {spool} ({how}; {self.mode.why})")
        try:
            while not self.stopping.is_set():
                self._ingest()
                self._reconcile_when_due()
                self.wake.wait(self._until_next_pass())
                self.wake.clear()
        finally:
            if observer is not None:
                observer.stop()
                observer.join(timeout=5)
            registration_path(spool).unlink(missing_ok=True)
            self.log("watcher stopped")

    def _until_next_pass(self) -> float:
        """Seconds to sleep unless woken: the poll interval, or (with inotify) until the
        next reconciliation or the next retry of a kept file, whichever comes first."""
        if self.mode.polling:
            return self.mode.interval
        waits = [self.mode.interval, self.next_reconcile - time.monotonic()]
        retry = self.retries.seconds_to_next()
        if retry is not None:
            waits.append(retry)
        return max(0.5, min(waits))

    def _start_observer(self, spool: Path) -> Any:  # watchdog's BaseObserver
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer

        wake = self.wake

        class SpoolEvents(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                # Opens and closes without a write are the watcher's own reads: waking
                # for them made it read a file kept for a retry again and again.
                if event.event_type not in WAKING_EVENTS:
                    return
                target = str(getattr(event, "dest_path", "") or event.src_path)
                name = os.path.basename(target)
                if name.endswith(".json") and not name.startswith("."):
                    wake.set()

        observer = Observer()
        observer.schedule(SpoolEvents(), str(spool), recursive=False)
        observer.start()
        return observer

    def _ingest(self) -> None:
        from spool.ingest import ingest_spool

        try:
            report = ingest_spool(self.gw, book=self.retries)
        except Exception as exc:
            self.log(f"ingest failed, retrying: {exc}")
            return
        from gateway.jobs.shapes import shape_of

        for job_id in report.finished:
            job = self.gw.jobs.get(job_id)
            model = f", model {job.model_ref}" if job.model_ref else ""
            self.log(f"job {job.id} ({shape_of(job).label(job.kind)}) {job.state}{model}"
                     + (f": {job.reason}" if job.reason else ""))
        for job_id, index in report.finished_tasks:
            job = self.gw.jobs.get(job_id)
            task = shape_of(job).unit(self.gw, job, index)
            model = f", model {task.model_ref}" if task.model_ref else ""
            self.log(f"job {job_id} task {index} {task.state}{model}"
                     + (f": {task.reason}" if task.reason else ""))
        for problem in report.put_aside:
            self.log(f"spool: put aside in spool/aside/: {problem}")
        for problem in report.retry:
            self.log(f"spool: kept for a retry: {problem}")

    def _reconcile_when_due(self) -> None:
        from spool.reconcile import reconcile

        if time.monotonic() < self.next_reconcile:
            return
        try:
            # a rendered script's run is adopted from the queue before any job is active
            if self.gw.jobs.has_active() or self.gw.jobs.has_renders():
                reconcile(self.gw)
            self.backoff = RECONCILE_SECONDS
        except SlurmError as exc:
            self.backoff = doubled(self.backoff, SLURM_MAX_SECONDS)
            self.log(f"Slurm did not answer ({exc}); next try in {self.backoff:.0f} s")
        except Exception as exc:
            self.log(f"reconcile failed, retrying: {exc}")
        self.next_reconcile = time.monotonic() + self.backoff

    def _register(self) -> None:
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "mode": "polling" if self.mode.polling else "inotify",
                "interval": self.mode.interval, "started": time.time()}
        path = registration_path(self.gw.layout.spool)
        path.parent.mkdir(mode=0o700, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(info))
        os.replace(tmp, path)


def _log_line(line: str) -> None:
    print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} gw spool watch: {line}", file=sys.stderr,
          flush=True)


def watch(gw: Gateway, poll: float | None) -> None:
    """Run a watcher in the foreground until SIGTERM or SIGINT."""
    watcher = SpoolWatcher(gw, choose_mode(gw.layout.spool, poll))
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: watcher.stop())
    watcher.run()
