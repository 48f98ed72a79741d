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

from gateway.context import Gateway
from gateway.jobs.repository import RENDER_SHAPE
from gateway.jobs.request import JobRequest
from gateway.jobs.submit import resolve_request
from gateway.jobs.values import SubmitContext


def renders_dir(gw: Gateway) -> Path:
    """Where each render keeps its script, its 0600 env file and its runs' logs."""
    return gw.layout.root / "renders"


def render_job(gw: Gateway, request: JobRequest) -> tuple[int, str]:
    """Check ``request`` as a submission would, record the render and write its script
    and env file under ``renders/<id>/``; returns the id and the script."""
    from dataclasses import replace

    from containers.runtime import write_env_file
    from gateway.common.errors import InvalidInput
    from gateway.common.trees import remove_tree
    from gateway.jobs.identity import render_comment
    from gateway.jobs.model import Job
    from gateway.jobs.shapes import get_shape
    from gateway.jobs.submit import container_spec, render_script

    shape = get_shape(request.shape).renders_as
    if shape is None:
        raise InvalidInput(f"a {request.shape} job cannot be rendered as one script")
    plan = resolve_request(gw, replace(request, shape=shape))
    if not plan.image.ready:   # a script run any day later has no build to wait for
        raise InvalidInput(f"image {plan.image.name} is {plan.image.state}: a rendered script "
                           "needs a READY image (gw image show "
                           f"{plan.image.name}; `gw image import --wait` waits for it)")
    # Its runs are recorded as jobs of this shape (jobs/repository.py: adopt_run).
    plan = replace(plan, spec=replace(plan.spec, extra={**plan.spec.extra,
                                                         RENDER_SHAPE: plan.shape.name}))
    render_id = gw.jobs.create_render(kind=plan.kind.name, name=plan.name, spec=plan.spec,
                                      model_name=plan.model_name,
                                      algo_version_id=plan.algo.record_id if plan.algo else None,
                                      data_version_id=plan.data.record_id if plan.data else None,
                                      image_id=plan.image.record_id)
    directory = renders_dir(gw) / str(render_id)
    try:
        directory.mkdir(mode=0o700, parents=True)
        job = Job(id=0, kind=plan.kind.name, origin="sbatch", name=plan.name,
                  state="SUBMITTING", reason="", slurm_job_id=None, node="", exit_code=None,
                  submitted=0, started=None, ended=None, updated=None, job_dir=directory,
                  model_name=plan.model_name, shape=plan.shape.name,
                  spec=replace(plan.spec, extra={**plan.spec.extra, "render_id": render_id}))
        ctx = SubmitContext(gw=gw, job=job, image=plan.image, algo=plan.algo, data=plan.data)
        text = render_script(plan.kind, plan.shape, ctx, home_id=gw.home_id,
                             runtime=plan.runtime, resources=plan.resources,
                             identity=render_comment(gw.home_id, render_id))
        write_env_file(container_spec(plan.kind, plan.shape, ctx, plan.resources),
                       plan.runtime)
        job.layout.script.write_text(text)
    except BaseException:
        remove_tree(directory)
        gw.jobs.discard_render(render_id)
        raise
    return render_id, text
