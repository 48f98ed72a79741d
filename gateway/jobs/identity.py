"""The identity every Slurm job carries: which home and which gateway job it belongs to.

It travels in ``sbatch --comment`` (squeue's ``%k``, sacct's ``Comment`` with
``AccountingStoreFlags=job_comment``), so that a job whose submission answer was lost is
found again and adopted, never orphaned or counted twice.
"""

from __future__ import annotations

PREFIX = "gw"


def identity_comment(home_id: str, job_id: int) -> str:
    """The Slurm ``--comment`` that ties a Slurm job to its gateway job."""
    return f"{PREFIX}:{home_id}:{job_id}"


def parse_identity_comment(comment: str, home_id: str) -> int | None:
    """The gateway job id in ``comment`` when it names this home, else None."""
    prefix = f"{PREFIX}:{home_id}:"
    if comment.startswith(prefix) and comment[len(prefix):].isdigit():
        return int(comment[len(prefix):])
    return None


def render_comment(home_id: str, render_id: int) -> str:
    """The ``--comment`` of a script from `gw job render`: every run of it carries it."""
    return f"{PREFIX}:{home_id}:r{render_id}"


def parse_render_comment(comment: str, home_id: str) -> int | None:
    """The render id in ``comment`` when it names a rendered script of this home."""
    prefix = f"{PREFIX}:{home_id}:r"
    if comment.startswith(prefix) and comment[len(prefix):].isdigit():
        return int(comment[len(prefix):])
    return None
