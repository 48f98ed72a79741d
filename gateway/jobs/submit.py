"""Submitting a job of any kind: validate, record, lay out, render, sbatch.

The order keeps every promise: nothing is recorded until the request is valid; a job
whose own input turns out invalid while its script is made leaves no row and no
directory; a job Slurm refuses stays FAILED with Slurm's words as its reason; a job whose
sbatch answer was lost stays SUBMITTING until reconciliation adopts it by its identity
(the ``--comment`` every script carries) or, after a grace period, fails it. Job ids are
never reused.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.common.errors import InvalidInput, SlurmError, SlurmUnavailable
from gateway.common.quoting import slurm_filename
from gateway.common.specs import (
    Resources,
    check_job_name,
    check_name,
    format_mib,
    format_time,
)
from gateway.common.trees import remove_tree
from gateway.context import Gateway
from gateway.jobs.identity import identity_comment
from gateway.jobs.kinds import JobKind, get_kind
from gateway.jobs.layout import JobLayout
from gateway.jobs.model import Job, JobSpec
from gateway.jobs.request import JobRequest
from gateway.jobs.shapes import JobShape, get_shape
from gateway.jobs.values import SubmitContext

if TYPE_CHECKING:
    from containers.runtime import ContainerSpec
    from gateway.stores.images import ImageRecord
    from gateway.stores.versioned import VersionInfo

def slurm_options(shape: JobShape, job: Job, resources: Resources, home_id: str,
                  identity: str | None = None, after: str | None = None
                  ) -> list[tuple[str, object]]:
    """The gateway's sbatch options of a job as (name, value) pairs (value None: a bare
    flag), in the order the script writes them; the shape's come after the identity.
    ``after``: the Slurm id of a job this one waits for (its image's build): it starts
    when that one completed, and Slurm ends it if that one fails."""
    from gateway.common.templating import slurm_job_name

    options: list[tuple[str, object]] = [
        ("job-name", slurm_job_name(job.name)),
        ("comment", identity or identity_comment(home_id, job.id)),
        ("chdir", job.job_dir),
        *shape.sbatch_options(job, resources),
        ("cpus-per-task", resources.cpus),
        ("mem", format_mib(resources.slurm_mem_mib)),
        ("time", format_time(resources.time_seconds))]
    if resources.gpus:
        options.append(("gres", f"gpu:{resources.gpus_text}"))
    for name in ("partition", "account", "qos", "constraint"):
        if getattr(resources, name):
            options.append((name, getattr(resources, name)))
    if resources.exclusive:
        options.append(("exclusive", None))
    if after:
        options += [("dependency", f"afterok:{after}"), ("kill-on-invalid-dep", "yes")]
    if resources.restarts:   # docs/resume.md: requeued, signalled ahead of the limit
        options += [("requeue", None), ("open-mode", "append"),
                    ("signal", f"B:USR1@{resources.save_seconds}")]
    return options


def resume_values(resources: Resources) -> dict[str, int | bool] | None:
    """What sbatch/resume.sh.j2 needs of a job with --restarts (None: not resumable). The
    command has ``wait_seconds`` after the signal to save before the job requeues itself:
    the lead time less the time to requeue and tear down."""
    if not resources.restarts:
        return None
    lead = resources.save_seconds
    return {"restarts": resources.restarts, "on_failure": resources.restart_on_failure,
            "save_seconds": lead, "wait_seconds": max(lead - 10, lead // 2, 1)}


def slurm_flags(shape: JobShape, job: Job, resources: Resources, home_id: str,
                identity: str | None = None, after: str | None = None) -> list[str]:
    """The gateway's ``#SBATCH`` flags of a job, built from data and quoted."""
    from gateway.common.templating import sbatch_flag

    return [f"--{name}" if value is None else sbatch_flag(name, value)
            for name, value in slurm_options(shape, job, resources, home_id, identity,
                                             after)]


# What a resumable job's command is told of its attempt (sbatch/resume.sh.j2's variables).
RESUME_ENV = (("GW_ATTEMPT", "gw_attempt"), ("GW_RESUMED", "gw_resumed"))


def container_spec(kind: JobKind, shape: JobShape, ctx: SubmitContext,
                   resources: Resources) -> ContainerSpec:
    """How a unit's container runs: the kind's mounts over the shape's unit directory, the
    shape's command, the image's and the job's env."""
    from containers.mounts import CODE
    from containers.runtime import ContainerSpec

    job, image = ctx.job, ctx.image
    env: dict[str, str] = dict(image.config.get("env", {}))
    env.update({"GW_JOB_ID": str(job.id), "GW_JOB_NAME": job.name,
                "GW_ALGO": job.spec.algo or "", "GW_DATASET": job.spec.dataset or "",
                "GW_IMAGE": image.name})
    env.update(job.spec.env)
    return ContainerSpec(
        sif=str(image.sif_path),
        partition_offset=image.partition_offset if image.ready else None,
        scratch_parent=str(ctx.gw.config["node_scratch"]),
        mounts=tuple(kind.mounts(ctx, shape.unit_dir(ctx))), workdir=CODE,
        env=tuple(env.items()), command=shape.container_command(ctx),
        env_file=str(job.layout.env_file), gpus=resources.gpus,
        shm_bytes=resources.shm_mib * 1024 * 1024,
        node_env=kind.node_env + shape.node_env + (RESUME_ENV if resources.restarts else ()),
        passed_prefixes=shape.passed_prefixes)


def render_script(kind: JobKind, shape: JobShape, ctx: SubmitContext, *, home_id: str,
                  runtime: str, resources: Resources, identity: str | None = None) -> str:
    """The sbatch script of a job: the kind's template over the base template, with the
    shape's macros."""
    from containers.runtime import container_script
    from gateway.common.templating import render, render_text
    from spool.format import shell_writer

    job, image = ctx.job, ctx.image
    description = [f"algorithm {job.spec.algo or 'none'}, dataset {job.spec.dataset or 'none'}",
                   f"image {image.name} ({image.digest}), runtime {runtime}"]
    spec = container_spec(kind, shape, ctx, resources)
    after = image.pending_build if kind.runs_image else None
    values = dict(sbatch_flags=slurm_flags(shape, job, resources, home_id, identity, after),
                  kind=kind.name, job_id=job.id, home_id=home_id, description=description,
                  spool_dir=str(ctx.gw.layout.spool), spool_writer=shell_writer(),
                  container=shape.launch(ctx, container_script(spec, runtime)),
                  shape_macros=shape.macros, resume=resume_values(resources),
                  **shape.template_values(ctx), **kind.template_values(ctx))
    custom = job.spec.extra.get("sbatch_template")
    if custom:
        from gateway.jobs.sbatch_templates import check_template, find_template

        text, path = find_template(ctx.gw, str(custom))
        check_template(text, str(path))  # a site's file may have changed since
        return render_text(text, **values)
    return render(kind.template, **values)


@dataclass(frozen=True)
class ResolvedJob:
    """A request checked against the stores, the images and the partitions: everything a
    job record or a rendered script is made from."""

    kind: JobKind
    shape: JobShape
    name: str
    spec: JobSpec
    model_name: str
    resources: Resources
    runtime: str
    image: ImageRecord
    algo: VersionInfo | None
    data: VersionInfo | None


def resolve_request(gw: Gateway, request: JobRequest) -> ResolvedJob:
    """Check a request against the home and the cluster; nothing is recorded."""
    from containers.runtime import detect_runtime
    from gateway.common.specs import check_against_partitions
    from gateway.stores.images import get_image

    kind = get_kind(request.kind)
    shape = get_shape(request.shape)
    shape.check_request(request)
    if request.resources.restarts and not (kind.resumes and shape.resumes):
        raise InvalidInput(f"--restarts: a {shape.label(kind.name)} job cannot be resumed "
                           "(training and background tasks can, as one job or a sweep)")
    if request.name is not None:
        check_job_name(request.name)
    if not request.command:
        raise InvalidInput("no command: put it after `--`, e.g. gw job submit ... -- python "
                           "train.py")
    algo = gw.version("algo", request.algo) if request.algo else None
    data = gw.version("data", request.data) if request.data else None
    image = get_image(gw, request.image)
    if kind.runs_image:
        check_runnable(image)
    default_model = (algo.meta.get("model_name") or algo.name) if algo else kind.name
    model_name = check_name(request.model_name or default_model, "model")
    runtime = detect_runtime(str(gw.config["runtime"]))
    slurm_filename(gw.layout.jobs)  # a home Slurm cannot name is refused before any record
    partition = check_against_partitions(request.resources, gw.slurm.partitions())
    resources = replace(request.resources, partition=partition)
    if resources.restarts:
        resources = replace(resources, save_seconds=resources.signal_lead_seconds(
            int(gw.config["resume_save_seconds"])))
    base_name = algo.name if algo else kind.name
    name = request.name or f"{base_name}-{time.strftime('%Y%m%d-%H%M%S')}"
    spec = JobSpec(command=tuple(request.command), env=dict(request.env), runtime=runtime,
                   resources=resources.as_dict(), algo=algo.ref if algo else None,
                   image=image.name, image_digest=image.digest,
                   dataset=data.ref if data else None, extra=dict(request.extra),
                   recipe=dict(request.recipe))
    return ResolvedJob(kind=kind, shape=shape, name=name, spec=spec, model_name=model_name,
                       resources=resources, runtime=runtime, image=image, algo=algo,
                       data=data)


def check_runnable(image: ImageRecord) -> None:
    """Refuse an image a job cannot run or wait for: one that failed to build, or one
    whose build has no Slurm job to wait for (built on a login node, or being submitted)."""
    if image.state == "FAILED":
        raise InvalidInput(f"image {image.name} failed to build: {image.reason} (its log: "
                           f"gw image logs {image.name}; import it again to retry)")
    if image.state == "BUILDING" and image.pending_build is None:
        raise InvalidInput(f"image {image.name} is still being built outside Slurm (or its "
                           f"build job is being submitted): submit again once `gw image show "
                           f"{image.name}` says READY")


def submit_job(gw: Gateway, request: JobRequest) -> Job:
    """Validate, record, lay out and submit a job; returns it as recorded."""
    job, script = prepare_job(gw, request)
    return _sbatch(gw, job, script)


def submit_prepared(gw: Gateway, job: Job, script: Path) -> Job:
    """Submit a job :func:`prepare_job` made (Slurm's refusal: FAILED, and raised)."""
    return _sbatch(gw, job, script)


def prepare_job(gw: Gateway, request: JobRequest) -> tuple[Job, Path]:
    """Validate, record and lay out a job, ready for sbatch; returns it (SUBMITTING) and
    its script. Whoever submits it must give Slurm the job's ``--comment`` identity: the
    job is adopted by it (`gw notebook start --for-portal`: Open OnDemand submits)."""
    job_plan = resolve_request(gw, request)
    algo, data, image = job_plan.algo, job_plan.data, job_plan.image
    job = gw.jobs.create(kind=job_plan.kind.name, shape=job_plan.shape.name,
                         origin=request.origin, name=job_plan.name,
                         spec=job_plan.spec, model_name=job_plan.model_name,
                         jobs_root=gw.layout.jobs,
                         algo_version_id=algo.record_id if algo else None,
                         data_version_id=data.record_id if data else None,
                         image_id=image.record_id)
    script = _prepare(gw, job_plan, job)
    return job, script


def _prepare(gw: Gateway, plan: ResolvedJob, job: Job) -> Path:
    """Lay out the job directory and write its script and env file; on any failure, no
    trace."""
    from containers.runtime import write_env_file

    made_dir = False
    try:
        job.job_dir.mkdir(mode=0o700)  # exclusive: ids are never reused
        made_dir = True
        ctx = SubmitContext(gw=gw, job=job, image=plan.image, algo=plan.algo, data=plan.data)
        plan.kind.prepare(ctx)
        plan.shape.prepare(ctx)
        text = render_script(plan.kind, plan.shape, ctx, home_id=gw.home_id,
                             runtime=plan.runtime, resources=plan.resources)
        write_env_file(container_spec(plan.kind, plan.shape, ctx, plan.resources),
                       plan.runtime)
        job.layout.script.write_text(text)
        return job.layout.script
    except BaseException as exc:
        if made_dir:
            remove_tree(job.job_dir)
        gw.jobs.discard_unsubmitted(job.id)
        if isinstance(exc, FileExistsError):
            raise InvalidInput(f"job directory {job.job_dir} already exists: this home holds "
                               "files no database record explains (see `gw doctor`)") from exc
        raise


def _sbatch(gw: Gateway, job: Job, script: Path) -> Job:
    """Hand the script to Slurm and record its answer."""
    try:
        slurm_id = gw.slurm.submit(script)
    except SlurmUnavailable as exc:
        if exc.returncode is None:
            # sbatch timed out: the controller may have taken the job. Reconciliation
            # adopts it by its comment, or fails it when Slurm never heard of it.
            gw.jobs.note(job.id, reason="sbatch did not answer; waiting to learn from Slurm "
                                        "whether it took the job")
            exc.message = (f"job {job.id} left SUBMITTING: {exc.message}. Slurm may have "
                           f"taken it: gw adopts it when Slurm shows it, or marks it FAILED "
                           f"if Slurm never heard of it (gw job show {job.id})")
            raise
        _refused(gw, job, exc)
        raise
    except SlurmError as exc:
        _refused(gw, job, exc)
        raise
    gw.jobs.attach_slurm_id(job.id, slurm_id)
    return gw.jobs.get(job.id)


def _refused(gw: Gateway, job: Job, exc: SlurmError) -> None:
    """Slurm said no: the job stays, FAILED, with Slurm's words; its copies go."""
    words = exc.stderr.strip().splitlines()[-1] if exc.stderr.strip() else str(exc)
    gw.jobs.transition(job.id, ["SUBMITTING"], "FAILED", reason=f"sbatch refused the job: "
                       f"{words}"[:500], ended=time.time())
    for part in ("code", "model"):
        remove_tree(job.job_dir / part)


def test_submission(gw: Gateway, request: JobRequest) -> dict[str, object]:
    """Check a request, render its script as a submission would, and ask Slurm when it
    would start (``sbatch --test-only``). Nothing is recorded and nothing is left behind."""
    import tempfile

    plan = resolve_request(gw, request)
    gw.layout.tmp.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix="test-only.", dir=gw.layout.tmp))
    try:
        job = Job(id=0, kind=plan.kind.name, origin=request.origin, name=plan.name,
                  state="SUBMITTING", reason="", slurm_job_id=None, node="", exit_code=None,
                  submitted=time.time(), started=None, ended=None, updated=None,
                  job_dir=directory, model_name=plan.model_name, spec=plan.spec,
                  shape=plan.shape.name)
        ctx = SubmitContext(gw=gw, job=job, image=plan.image, algo=plan.algo, data=plan.data)
        script = JobLayout(directory).script
        script.write_text(render_script(plan.kind, plan.shape, ctx, home_id=gw.home_id,
                                        runtime=plan.runtime, resources=plan.resources))
        said = gw.slurm.test_only(script)
    finally:
        remove_tree(directory)
    return {**said, "name": plan.name, "resources": plan.resources.as_dict()}
