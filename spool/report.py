"""What one ingest pass did (kept apart so that read commands need not import ingest)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class IngestReport:
    """What one ingest pass did."""

    finished: list[int] = field(default_factory=list)       # jobs that reached a final state
    finished_tasks: list[tuple[int, int]] = field(default_factory=list)  # (job, sweep task)
    put_aside: list[str] = field(default_factory=list)      # files that change nothing
    retry: list[str] = field(default_factory=list)          # files to try again later
    busy: bool = False   # another process (the watcher, another command) was ingesting
