"""The one backoff: a delay that doubles on each failure up to a cap.

Used while slurmctld does not answer (read commands and the watcher ask again after
:data:`SLURM_FIRST_SECONDS`, doubling up to :data:`SLURM_MAX_SECONDS`) and for spool files
kept for a retry (spool/retry.py: its own first delay and cap, the same rule).
"""

from __future__ import annotations

SLURM_FIRST_SECONDS = 10.0
SLURM_MAX_SECONDS = 300.0


def delay_after(failures: int, first: float, cap: float) -> float:
    """The delay after ``failures`` failures in a row (1: ``first``), doubling, at most
    ``cap``."""
    return min(first * 2.0 ** max(failures - 1, 0), cap)


def doubled(delay: float, cap: float) -> float:
    """The next delay after ``delay`` failed again."""
    return min(delay * 2, cap)
