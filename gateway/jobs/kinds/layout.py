"""The job directory and mounts that training jobs and notebooks share."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from containers.mounts import CODE, DATASET, MODEL
from gateway.jobs.kinds.base import SubmitContext

if TYPE_CHECKING:
    from containers.runtime import Mount, Shell


def lay_out_code_and_model(ctx: SubmitContext) -> None:
    """``code/``: a writable copy of the algorithm version; ``model/``: empty."""
    from gateway.common.trees import copy_writable

    layout = ctx.job.layout
    if ctx.algo is not None:
        copy_writable(ctx.algo.path, layout.code)
    else:
        layout.code.mkdir(mode=0o700)
    layout.model.mkdir(mode=0o700)


def standard_mounts(ctx: SubmitContext, unit_dir: Path | Shell) -> list[Mount]:
    """/code and /model from the unit's directory (a path, or shell text only the node
    can expand, e.g. a task's), /dataset read-only from the store."""
    from containers.runtime import Mount, Shell

    def inside(name: str) -> str | Shell:
        if isinstance(unit_dir, Path):
            return str(unit_dir / name)
        return Shell(f"{unit_dir}/{name}")

    mounts = [Mount(inside("code"), CODE)]
    if ctx.data is not None:
        mounts.append(Mount(str(ctx.data.path), DATASET, read_only=True))
    mounts.append(Mount(inside("model"), MODEL))
    return mounts
