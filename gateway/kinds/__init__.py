"""Job kinds: what differs between a training job, a notebook, a headless notebook.

A kind brings its sbatch template (which extends templates/sbatch/base.sh.j2), lays out
its job directory and names its mounts, and says what happens when a job ends. Submit,
ingest and reconciliation call the kind; none of them tests which kind it is.
"""

from __future__ import annotations

from hpc_gateway.gateway.errors import InvalidInput
from hpc_gateway.gateway.kinds.base import JobKind
from hpc_gateway.gateway.kinds.headless import HeadlessKind
from hpc_gateway.gateway.kinds.notebook import NotebookKind
from hpc_gateway.gateway.kinds.sweep import SweepKind
from hpc_gateway.gateway.kinds.training import TrainingKind

KINDS: dict[str, JobKind] = {kind.name: kind for kind in (TrainingKind(), NotebookKind(),
                                                            HeadlessKind(), SweepKind())}


def get_kind(name: str) -> JobKind:
    """The kind called ``name``."""
    try:
        return KINDS[name]
    except KeyError:
        raise InvalidInput(f"unknown job kind {name!r}; known: {', '.join(KINDS)}") from None
