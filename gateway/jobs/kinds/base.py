"""The shape of a job kind, and what it is handed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from gateway.jobs.values import JobEnd, SubmitContext, Unit

__all__ = ["JobEnd", "JobKind", "SubmitContext"]

if TYPE_CHECKING:
    from pathlib import Path

    from containers.runtime import Mount, Shell
    from gateway.context import Gateway
    from gateway.jobs.model import Job
    from gateway.jobs.request import JobRequest


class JobKind(Protocol):
    """What a kind provides. ``template`` is a path under templates/ that extends
    ``sbatch/base.sh.j2``."""

    name: str
    template: str
    # Variables only the node knows, passed into the container: (NAME, shell variable the
    # template's prologue sets). Never secrets.
    node_env: tuple[tuple[str, str], ...]
    arrays: bool        # may run as an array of tasks (a sweep)
    renders: bool       # its script runs with no gw on the node (`gw job render`)
    serves: bool        # a server people open (`gw notebook ...` acts on it)
    gangs: bool         # may run as a gang: ranks on many nodes (a distributed job)
    runs_image: bool    # its units run the image's SIF: it waits for the image's build
    resumes: bool       # may run again after a time limit or preemption (--restarts)

    def prepare(self, ctx: SubmitContext) -> None:
        """Lay out the job directory (it exists, empty, private) before the script."""
        ...

    def mounts(self, ctx: SubmitContext, unit_dir: Path | Shell) -> list[Mount]:
        """Host paths bound into the container (targets from containers/mounts.py);
        ``unit_dir`` is where the shape puts a unit's code/ and model/."""
        ...

    def template_values(self, ctx: SubmitContext) -> dict[str, Any]:
        """Values the kind's template needs beyond the base template's."""
        ...

    def recipe(self, job: Job, options: dict[str, Any], command: tuple[str, ...]
               ) -> tuple[dict[str, Any], tuple[str, ...]]:
        """The options and command that ask for ``job`` again (gateway/jobs/recipes.py), given
        those every kind shares."""
        ...

    def rerun_request(self, job: Job, request: JobRequest) -> JobRequest:
        """The request that runs ``job`` again, from the one its recipe made (`gw job
        rerun`): what only the kind knows goes back in (a notebook's server, a new token)."""
        ...

    def on_end(self, gw: Gateway, job: Job, unit: Unit, end: JobEnd) -> str:
        """What happens when a unit of the job ends (before its final state is recorded):
        harvest its /model, save code back, keep outputs. Must be safe to run again after a
        crash or by a second ingester. Returns a note for the reason ("" for none)."""
        ...
