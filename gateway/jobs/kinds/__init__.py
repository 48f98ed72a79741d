"""Job kinds: what runs (a training job, a notebook, a headless notebook, an image build).

A kind brings its sbatch template (which extends templates/sbatch/base.sh.j2), lays out
its job directory and names its mounts, and says what happens when a unit of a job ends;
the job's shape (gateway/jobs/shapes/) says how many units run and how. Submit, ingest and
reconciliation call the kind; none of them tests which kind it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.common.errors import InvalidInput
from gateway.jobs.kinds.base import JobKind
from gateway.jobs.kinds.headless import HeadlessKind
from gateway.jobs.kinds.image_build import ImageBuildKind
from gateway.jobs.kinds.notebook import NotebookKind
from gateway.jobs.kinds.training import TrainingKind

if TYPE_CHECKING:
    from gateway.jobs.model import Job

KINDS: dict[str, JobKind] = {kind.name: kind for kind in (TrainingKind(), NotebookKind(),
                                                            HeadlessKind(),
                                                            ImageBuildKind())}


def get_kind(name: str) -> JobKind:
    """The kind called ``name``."""
    try:
        return KINDS[name]
    except KeyError:
        raise InvalidInput(f"unknown job kind {name!r}; known: {', '.join(KINDS)}") from None


def kind_of(job: Job) -> JobKind:
    """The kind of a recorded job."""
    return get_kind(job.kind)
