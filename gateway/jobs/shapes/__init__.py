"""Job shapes: how many units of a job run and how (one task, an array of tasks, a gang of
ranks on many nodes, a rendered script's runs). See gateway/jobs/shapes/base.py; the kinds
(gateway/jobs/kinds/) say what runs. Submit, ingest, reconciliation, logs, top, outputs and
rerun call the shape; none of them tests which shape it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.common.errors import InvalidInput
from gateway.jobs.shapes.array import ArrayShape
from gateway.jobs.shapes.base import JobShape, Unit
from gateway.jobs.shapes.gang import GangShape, is_gang
from gateway.jobs.shapes.rendered import RenderedShape
from gateway.jobs.shapes.rendered_gang import RenderedGangShape
from gateway.jobs.shapes.single import SingleShape

if TYPE_CHECKING:
    from gateway.common.specs import Resources
    from gateway.jobs.model import Job

__all__ = ["SHAPES", "JobShape", "Unit", "get_shape", "shape_for", "shape_of"]

SHAPES: dict[str, JobShape] = {shape.name: shape for shape in (
    SingleShape(), ArrayShape(), GangShape(), RenderedShape(), RenderedGangShape())}


def shape_for(resources: Resources, launcher: str | None, otherwise: str = SingleShape.name
              ) -> str:
    """The shape a command job of these resources runs as: a gang when it has more than
    one rank (or names a launcher), else ``otherwise`` (one task, unless said)."""
    return GangShape.name if is_gang(resources, launcher) else otherwise


def get_shape(name: str) -> JobShape:
    """The shape called ``name``."""
    try:
        return SHAPES[name]
    except KeyError:
        raise InvalidInput(f"unknown job shape {name!r}; known: {', '.join(SHAPES)}") from None


def shape_of(job: Job) -> JobShape:
    """The shape of a recorded job."""
    return get_shape(job.shape)
