"""The job directory and mounts that training jobs and notebooks share."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hpc_gateway.containers.mounts import CODE, DATASET, MODEL
from hpc_gateway.gateway.kinds.base import SubmitContext

if TYPE_CHECKING:
    from hpc_gateway.containers.runtime import Mount


def lay_out_code_and_model(ctx: SubmitContext) -> None:
    """``code/``: a writable copy of the algorithm version; ``model/``: empty."""
    from hpc_gateway.gateway.trees import copy_writable

    if ctx.algo is not None:
        copy_writable(ctx.algo.path, ctx.job.job_dir / "code")
    else:
        (ctx.job.job_dir / "code").mkdir(mode=0o700)
    (ctx.job.job_dir / "model").mkdir(mode=0o700)


def standard_mounts(ctx: SubmitContext) -> list[Mount]:
    """/code and /model from the job directory, /dataset read-only from the store."""
    from hpc_gateway.containers.runtime import Mount

    mounts = [Mount(str(ctx.job.job_dir / "code"), CODE)]
    if ctx.data is not None:
        mounts.append(Mount(str(ctx.data.path), DATASET, read_only=True))
    mounts.append(Mount(str(ctx.job.job_dir / "model"), MODEL))
    return mounts


def node_mounts(ctx: SubmitContext, run_dir: str) -> list[Mount]:
    """/code and /model from a directory only the node knows (``run_dir`` is shell text,
    e.g. ``"$gw_task_dir"``), /dataset read-only from the store."""
    from hpc_gateway.containers.runtime import Mount, Shell

    mounts = [Mount(Shell(f"{run_dir}/code"), CODE)]
    if ctx.data is not None:
        mounts.append(Mount(str(ctx.data.path), DATASET, read_only=True))
    mounts.append(Mount(Shell(f"{run_dir}/model"), MODEL))
    return mounts
