"""Job shapes: how many units of a job run and how (one task, an array of tasks, a
rendered script's runs). See gateway/shapes/base.py; the kinds (gateway/kinds/) say what
runs. Submit, ingest, reconciliation, logs, top, outputs and rerun call the shape; none of
them tests which shape it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hpc_gateway.gateway.errors import InvalidInput
from hpc_gateway.gateway.shapes.array import ArrayShape
from hpc_gateway.gateway.shapes.base import JobShape, Unit
from hpc_gateway.gateway.shapes.rendered import RenderedShape
from hpc_gateway.gateway.shapes.single import SingleShape

if TYPE_CHECKING:
    from hpc_gateway.gateway.job_model import Job

__all__ = ["SHAPES", "JobShape", "Unit", "get_shape", "shape_of"]

SHAPES: dict[str, JobShape] = {shape.name: shape for shape in (SingleShape(), ArrayShape(),
                                                               RenderedShape())}


def get_shape(name: str) -> JobShape:
    """The shape called ``name``."""
    try:
        return SHAPES[name]
    except KeyError:
        raise InvalidInput(f"unknown job shape {name!r}; known: {', '.join(SHAPES)}") from None


def shape_of(job: Job) -> JobShape:
    """The shape of a recorded job."""
    return get_shape(job.shape)
