"""The ``rendered_gang`` shape: a distributed job's script of its own (`gw job render
--nodes N ...`), run with plain sbatch as often as people like.

Each run lays out its own directory ``jobs/sbatch-<Slurm id>`` as a rendered run does
(gateway/jobs/shapes/rendered.py), with ``tasks/<rank>/`` for its ranks, and starts them
as a gang does (gateway/jobs/shapes/gang.py). Recorded, a run is a gang: one unit for its
end, one model version with every node in its lineage, each rank's output and load.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.common.errors import InvalidInput
from gateway.jobs.shapes.gang import GangShape
from gateway.jobs.shapes.rendered import RUN_DIR, RenderedShape

if TYPE_CHECKING:
    from containers.runtime import Shell
    from gateway.jobs.request import JobRequest
    from gateway.jobs.values import SubmitContext


class RenderedGangShape(GangShape):
    """The ``rendered_gang`` shape."""

    name = "rendered_gang"
    macros = "sbatch/shapes/rendered_gang.sh.j2"
    reruns_as = "gang"   # a rerun is submitted by gw, not run from the script
    renders_as = "rendered_gang"
    resumes = True      # a requeued run keeps its Slurm id, so its directory
    _rendered = RenderedShape()

    def check_request(self, request: JobRequest) -> None:
        """A gang's request that may be rendered (a command, the gateway's template)."""
        super().check_request(request)
        from gateway.jobs.kinds import get_kind

        if not get_kind(request.kind).renders:
            raise InvalidInput("only command jobs with the gateway's template can be "
                               "rendered: edit the rendered script")

    def unit_dir(self, ctx: SubmitContext) -> Path | Shell:
        """The run's directory (known on the node)."""
        return self._rendered.unit_dir(ctx)

    def prepare(self, ctx: SubmitContext) -> None:
        """Nothing: each run lays out its own directory, its ranks' among them."""

    def template_values(self, ctx: SubmitContext) -> dict[str, Any]:
        """The rendered run's values and the gang's."""
        return {**self._rendered.template_values(ctx), **super().template_values(ctx)}

    def units_dir(self, ctx: SubmitContext) -> str:
        """The run's ``tasks/`` (the run's directory is exported to every rank)."""
        return f"{RUN_DIR}/tasks"
