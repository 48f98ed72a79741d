"""What one ingest pass did (kept apart so that read commands need not import ingest)."""

from __future__ import annotations


class IngestReport:
    """What one ingest pass did. (A plain class: every read command makes one, and a
    dataclass costs `gw job list` the import of dataclasses.)"""

    def __init__(self) -> None:
        self.finished: list[int] = []                  # jobs that reached a final state
        self.finished_tasks: list[tuple[int, int]] = []  # (job, sweep task)
        self.put_aside: list[str] = []                 # files that change nothing
        self.retry: list[str] = []                     # files to try again later
        self.busy = False  # another process (the watcher, another command) was ingesting

    def __repr__(self) -> str:
        return (f"IngestReport(finished={self.finished}, finished_tasks={self.finished_tasks},"
                f" put_aside={self.put_aside}, retry={self.retry}, busy={self.busy})")
