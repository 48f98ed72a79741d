"""The ``rendered`` shape: one task, laid out by each run on the node (`gw job render`).

A rendered script is run with plain sbatch as often as people like; each run makes its own
directory ``jobs/sbatch-<Slurm id>`` with a private copy of /code and an empty /model, and
becomes a job of this shape when gw first sees it. Recorded, a run is one unit like a
``single`` job's, so it ends, follows and shows as one.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.common.errors import InvalidInput
from gateway.jobs.shapes.single import SingleShape, one_rank

if TYPE_CHECKING:
    from containers.runtime import Shell
    from gateway.jobs.request import JobRequest
    from gateway.jobs.values import SubmitContext

RUN_DIR = '"$GW_RUN_DIR"'   # set by the shape's prologue, on the node


class RenderedShape(SingleShape):
    """The ``rendered`` shape."""

    name = "rendered"
    macros = "sbatch/shapes/rendered.sh.j2"
    reruns_as = "single"   # a rerun is submitted by gw, not run from the script
    renders_as = "rendered"
    resumes = True      # a requeued run keeps its Slurm id, so its directory

    def check_request(self, request: JobRequest) -> None:
        """Only kinds whose script needs no gw on the node, with the gateway's template."""
        from gateway.jobs.kinds import get_kind

        if not get_kind(request.kind).renders or request.extra.get("sbatch_template"):
            raise InvalidInput("only command jobs with the gateway's template can be "
                               "rendered (not --notebook or --template ones): edit the "
                               "rendered script")
        one_rank(request, "a rendered script")

    def unit_dir(self, ctx: SubmitContext) -> Path | Shell:
        """The run's directory (known on the node)."""
        from containers.runtime import Shell

        return Shell(RUN_DIR)

    def prepare(self, ctx: SubmitContext) -> None:
        """Nothing: each run lays out its own directory on the node."""

    def template_values(self, ctx: SubmitContext) -> dict[str, Any]:
        """Its render, where runs go, what they copy, where Slurm writes their output."""
        return {"render_id": ctx.job.spec.extra["render_id"],
                "jobs_dir": str(ctx.gw.layout.jobs),
                "algo_path": str(ctx.algo.path) if ctx.algo else "",
                "log_dir": str(ctx.job.job_dir)}
