"""The job directory, mounts and defaults that every kind of this release shares."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from containers.mounts import CODE, DATASET, MODEL
from gateway.jobs.values import SubmitContext

if TYPE_CHECKING:
    from containers.runtime import Mount, Shell
    from gateway.jobs.model import Job
    from gateway.jobs.request import JobRequest


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


class StandardKind:
    """What a kind does unless it says otherwise (gateway/jobs/kinds/base.py): a private
    copy of the code and an empty /model, the standard mounts, nothing more in the
    template, the recipe and its request as they are."""

    node_env: tuple[tuple[str, str], ...] = ()
    runs_image = True

    def prepare(self, ctx: SubmitContext) -> None:
        """``code/``: a writable copy of the algorithm version; ``model/``: empty."""
        lay_out_code_and_model(ctx)

    def mounts(self, ctx: SubmitContext, unit_dir: Path | Shell) -> list[Mount]:
        """/code and /model from the unit's directory, /dataset read-only from the store."""
        return standard_mounts(ctx, unit_dir)

    def template_values(self, ctx: SubmitContext) -> dict[str, Any]:
        """Nothing beyond the base template's."""
        return {}

    def recipe(self, job: Job, options: dict[str, Any], command: tuple[str, ...]
               ) -> tuple[dict[str, Any], tuple[str, ...]]:
        """The shared options and the recorded command."""
        return options, command

    def rerun_request(self, job: Job, request: JobRequest) -> JobRequest:
        """The recipe's request as it is."""
        return request
