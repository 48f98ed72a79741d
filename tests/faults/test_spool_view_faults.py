"""A spool directory whose new files inotify cannot see, as on NFS or Lustre.

The fault is made real: the watcher runs in a mount namespace of its own where the spool
directory is a FUSE view (bindfs) of itself, while the job, outside that namespace, writes
its spool file into the directory underneath. The kernel reports no inotify event on the
view for such a write, exactly as an NFS client hears nothing of a compute node's write.
An inotify probe in the watcher's namespace shows that the fault is in place; the
watcher must notice the filesystem and poll, and harvest the job all the same.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import gw_executable
from tests.integration.test_watcher import home, submit, wait_harvested  # noqa: F401

PROBE = """
import sys, time
from watchdog.observers.inotify import InotifyObserver
from watchdog.events import FileSystemEventHandler

class Record(FileSystemEventHandler):
    def on_any_event(self, event):
        with open(sys.argv[2], "a") as out:
            if not event.is_directory:
                out.write(f"{event.event_type} {event.src_path} {event.dest_path}\\n")

observer = InotifyObserver()
observer.schedule(Record(), sys.argv[1])
observer.start()
open(sys.argv[2], "a").close()
while True:
    time.sleep(1)
"""


@pytest.fixture()
def watcher_behind_fuse(home, tmp_path):  # noqa: F811 - the fixture imported above
    """A watcher (and an inotify probe) seeing the spool only through a bindfs view."""
    if not shutil.which("bindfs") or not shutil.which("unshare"):
        pytest.fail("bindfs and unshare are needed (scripts/install-deps.sh installs them)")
    spool = Path(home["GW_HOME"]) / "spool"
    log, events = tmp_path / "watcher.log", tmp_path / "probe.events"
    (tmp_path / "probe.py").write_text(PROBE)
    script = (
        'bindfs -f "$SPOOL" "$SPOOL" & '
        'for i in $(seq 200); do '
        '  grep -q " $SPOOL fuse" /proc/self/mounts && break; sleep 0.05; done; '
        '"$PY" "$PROBE" "$SPOOL" "$EVENTS" & '
        'exec "$GW" spool watch')
    proc = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script],
        env={**os.environ, **home, "SPOOL": str(spool), "PY": sys.executable,
             "PROBE": str(tmp_path / "probe.py"), "EVENTS": str(events),
             "GW": gw_executable()},
        stdout=subprocess.DEVNULL, stderr=log.open("w"), start_new_session=True)
    deadline = time.time() + 30
    while time.time() < deadline and not (
            "watching" in log.read_text() and events.exists()):
        assert proc.poll() is None, log.read_text()
        time.sleep(0.1)
    yield proc, log, events
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the probe and bindfs
        time.sleep(0.2)


def test_polling_watcher_catches_a_spool_file_inotify_cannot_see(home, watcher_behind_fuse):  # noqa: F811
    proc, log, events = watcher_behind_fuse
    started = log.read_text()
    assert "polling" in started and "fuse" in started, started  # chosen from the filesystem
    job_id = submit(home, "unseen")
    # Only the watcher ingests here (no gw read command runs): the job's end reaches the
    # database through its polling alone.
    assert wait_harvested(home, job_id, timeout=90) == "COMPLETED", log.read_text()
    harvested = time.time()
    # The ingest records the job's end first and then moves its spool file to done/: the
    # database may show the harvest a moment before the move (this test once read done/
    # in between and failed with FileNotFoundError; the product had done nothing wrong).
    spool = Path(home["GW_HOME"]) / "spool"
    done = spool / "done" / f"{job_id}.json"
    deadline = time.time() + 10
    while not done.exists() and time.time() < deadline:
        time.sleep(0.05)
    # Had the watcher not polled, reconciliation with Slurm would have ended the job
    # without ever reading the file: it would still lie in spool/, not in done/.
    assert done.exists(), (f"spool/{job_id}.json was never ingested (still pending: "
                           f"{(spool / f'{job_id}.json').exists()}): the job ended through "
                           f"reconciliation, not polling\n{log.read_text()}")
    # Within one poll interval (2 s) of the file landing, not at the next reconciliation
    # with Slurm (every 30 s), which would harvest it even without polling. (A rename
    # keeps the file's mtime: the moment the job wrote it.)
    landed = done.stat().st_mtime
    assert harvested - landed < 2 + 1.5, f"harvested {harvested - landed:.1f} s after"
    assert f"job {job_id} (training) COMPLETED, model w@v1" in log.read_text()
    # The fault was real: inotify on the watcher's view heard nothing of the job writing
    # its file (a temp name, then a rename: spool/format.py). What it may hear is the
    # watcher's own work through the view: reading the file, its lock, its registration.
    job_names = (f"{job_id}.json", f".{job_id}.json.")
    arrivals = []
    for line in events.read_text().splitlines():
        kind, src, *dest = line.split()
        landed = Path(dest[0]) if kind == "moved" and dest else Path(src)
        if landed.parent == spool and landed.name.startswith(job_names) and kind in (
                "created", "modified", "closed", "moved"):
            arrivals.append(line)
    assert arrivals == [], arrivals
    assert f"closed_no_write {spool / job_names[0]}" in events.read_text(), \
        "the probe heard not even the watcher reading the file: it was not listening"
    assert proc.poll() is None
