"""Rendered scripts: `gw job render` writes a self-contained sbatch script that people keep,
edit around and run with plain ``sbatch`` as often as they like.

The script needs no gw on the node: it makes its run directory (``jobs/sbatch-<Slurm
id>``), copies the algorithm version into it, runs the container as a submitted job does
and writes a spool file naming its render. Each run becomes a gateway job when gw first
sees it, in the queue (by the ``--comment`` identity ``gw:<home>:r<render>``) or by its
spool file, and is harvested like any job; it shows in `gw job list` with origin
``sbatch``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpc_gateway.gateway.context import Gateway
from hpc_gateway.gateway.kinds.base import JobEnd, SubmitContext
from hpc_gateway.gateway.submit import JobRequest, resolve_request

if TYPE_CHECKING:
    from hpc_gateway.containers.runtime import Mount
    from hpc_gateway.gateway.job_model import Job

RUN_DIR = '"$GW_RUN_DIR"'


def renders_dir(gw: Gateway) -> Path:
    """Where each render keeps its script, its 0600 env file and its runs' logs."""
    return gw.layout.root / "renders"


class RenderedKind:
    """How a rendered script runs: a training job laid out on the node, not beforehand.
    (Its runs are recorded as ``training`` jobs: ingest and harvest treat them so.)"""

    name = "training"
    template = "sbatch/rendered.sh.j2"
    node_env: tuple[tuple[str, str], ...] = ()

    def prepare(self, ctx: SubmitContext) -> None:
        """Nothing: each run lays out its own directory on the node."""

    def mounts(self, ctx: SubmitContext) -> list[Mount]:
        """The run's /code and /model (known on the node), /dataset read-only."""
        from hpc_gateway.gateway.kinds.layout import node_mounts

        return node_mounts(ctx, RUN_DIR)

    def template_values(self, ctx: SubmitContext) -> dict[str, Any]:
        """Where runs go, what they copy, where Slurm writes their output."""
        return {"render_id": ctx.job.spec.extra["render_id"],
                "jobs_dir": str(ctx.gw.layout.jobs),
                "algo_path": str(ctx.algo.path) if ctx.algo else "",
                "log_dir": str(ctx.job.job_dir)}

    def on_end(self, gw: Gateway, job: Job, end: JobEnd) -> str:
        """Never called: runs are recorded as training jobs."""
        raise NotImplementedError


def render_job(gw: Gateway, request: JobRequest) -> tuple[int, str]:
    """Check ``request`` as a submission would, record the render and write its script
    and env file under ``renders/<id>/``; returns the id and the script."""
    from dataclasses import replace

    from hpc_gateway.containers.runtime import write_env_file
    from hpc_gateway.gateway.identity import render_comment
    from hpc_gateway.gateway.job_model import Job
    from hpc_gateway.gateway.submit import container_spec, render_script
    from hpc_gateway.gateway.trees import remove_tree

    if request.kind != "training" or request.extra.get("sbatch_template"):
        from hpc_gateway.gateway.errors import InvalidInput

        raise InvalidInput("only command jobs with the gateway's template can be rendered "
                           "(not --notebook or --template ones): edit the rendered script")
    plan = resolve_request(gw, request)
    render_id = gw.jobs.create_render(name=plan.name, spec=plan.spec,
                                      model_name=plan.model_name,
                                      algo_version_id=plan.algo.record_id if plan.algo else None,
                                      data_version_id=plan.data.record_id if plan.data else None,
                                      image_id=plan.image.record_id)
    directory = renders_dir(gw) / str(render_id)
    try:
        directory.mkdir(mode=0o700, parents=True)
        job = Job(id=0, kind="training", origin="sbatch", name=plan.name, state="SUBMITTING",
                  reason="", slurm_job_id=None, node="", exit_code=None, submitted=0,
                  started=None, ended=None, updated=None, job_dir=directory,
                  model_name=plan.model_name,
                  spec=replace(plan.spec, extra={**plan.spec.extra, "render_id": render_id}))
        ctx = SubmitContext(gw=gw, job=job, image=plan.image, algo=plan.algo, data=plan.data)
        kind = RenderedKind()
        text = render_script(kind, ctx, home_id=gw.home_id, runtime=plan.runtime,
                             resources=plan.resources,
                             identity=render_comment(gw.home_id, render_id))
        write_env_file(container_spec(kind, ctx, plan.resources), plan.runtime)
        (directory / "job.sbatch").write_text(text)
    except BaseException:
        remove_tree(directory)
        gw.jobs.discard_render(render_id)
        raise
    return render_id, text
