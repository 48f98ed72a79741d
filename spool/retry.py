"""When to read again a spool file that could not be ingested yet.

A long-running reader (the watcher) keeps one :class:`RetryBook`: a file kept for a retry
is read again after a delay that doubles each time it fails unchanged (2 s up to 60 s:
gateway/common/backoff.py),
and at once when it changes (its size or modification time). Only its first failure is
news: the watcher logs a kept file once, not on every pass. One-shot commands need no
book: each reads a pending file once.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from gateway.common.backoff import doubled

FIRST_DELAY_SECONDS = 2.0
MAX_DELAY_SECONDS = 60.0


class RetryBook:
    """Per spool file: its signature when it last failed, when to try it next, the delay."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.entries: dict[str, tuple[tuple[int, int], float, float]] = {}

    @staticmethod
    def _signature(path: Path) -> tuple[int, int]:
        try:
            st = os.stat(path)
        except OSError:
            return (-1, -1)
        return (st.st_size, st.st_mtime_ns)

    def due(self, path: Path) -> bool:
        """Whether ``path`` should be read now: never failed, changed, or its delay passed."""
        entry = self.entries.get(path.name)
        if entry is None:
            return True
        signature, next_at, _delay = entry
        return signature != self._signature(path) or self.clock() >= next_at

    def failed(self, path: Path) -> bool:
        """Record a failed read of ``path``; True when this is news (the first failure of
        the file as it is now), False when it failed unchanged before."""
        signature = self._signature(path)
        entry = self.entries.get(path.name)
        news = entry is None or entry[0] != signature
        delay = FIRST_DELAY_SECONDS if news or entry is None else doubled(entry[2],
                                                                          MAX_DELAY_SECONDS)
        self.entries[path.name] = (signature, self.clock() + delay, delay)
        return news

    def forget_missing(self, pending: list[Path]) -> None:
        """Drop the files no longer pending (ingested, put aside, removed)."""
        names = {p.name for p in pending}
        for name in [n for n in self.entries if n not in names]:
            del self.entries[name]

    def seconds_to_next(self) -> float | None:
        """Seconds until the earliest kept file is due (None when none is kept)."""
        if not self.entries:
            return None
        return max(0.0, min(next_at for _sig, next_at, _d in self.entries.values())
                   - self.clock())
