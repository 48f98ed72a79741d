"""What a job shape provides, and the unit it is made of.

A shape says how many units of a job run and how: one task (``single``), an array of
independent tasks (``array``: a sweep), a script whose runs lay themselves out on the node
(``rendered``). It brings its sbatch options, its part of the script (the macros
``identity()`` and ``prologue()`` in its template under templates/sbatch/shapes/), where a
unit's /code and /model are, the container command of a unit, the units of a recorded job
for logs, top and outputs, and how the job follows its units' states and ends.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from gateway.jobs.values import SubmitContext, Unit

__all__ = ["JobShape", "Unit"]

if TYPE_CHECKING:
    from containers.runtime import ContainerScript, Shell
    from gateway.common.specs import Resources
    from gateway.context import Gateway
    from gateway.jobs.end import EndDecision
    from gateway.jobs.model import Job
    from gateway.jobs.request import JobRequest
    from gateway.slurm.adapter import SlurmJobState
    from spool.format import SpoolRecord


class JobShape(Protocol):
    """What a shape provides. ``macros`` is a template under templates/ defining the macros
    ``identity()`` (the unit's id, Slurm id and spool file name) and ``prologue()`` (its
    directory on the node: ``gw_unit_dir``)."""

    name: str
    macros: str
    reruns_as: str      # the shape a rerun of such a job is submitted as
    renders_as: str | None  # the shape `gw job render` writes it as (None: not renderable)
    resumes: bool       # its units may be requeued and run again (--restarts)
    # Variables only the node knows, passed into the container (as a kind's node_env).
    node_env: tuple[tuple[str, str], ...]
    # Prefixes of the node's own variables that pass into the container (interconnect).
    passed_prefixes: tuple[str, ...]

    def label(self, kind: str) -> str:
        """How a job of ``kind`` and this shape is named in one line (the watcher's log)."""
        ...

    def check_request(self, request: JobRequest) -> None:
        """Refuse a request this shape cannot run (InvalidInput), before any record."""
        ...

    def sbatch_options(self, job: Job, resources: Resources) -> list[tuple[str, object]]:
        """The shape's sbatch options (how many nodes and tasks, an array, the output)."""
        ...

    def prepare(self, ctx: SubmitContext) -> None:
        """Lay out the units' directories, after the kind laid out the job's."""
        ...

    def unit_dir(self, ctx: SubmitContext) -> Path | Shell:
        """Where a unit's code/ and model/ are, as the script sees them."""
        ...

    def container_command(self, ctx: SubmitContext) -> tuple[str | Shell, ...]:
        """What the container of a unit runs."""
        ...

    def template_values(self, ctx: SubmitContext) -> dict[str, Any]:
        """Values its macros need."""
        ...

    def launch(self, ctx: SubmitContext, script: ContainerScript) -> ContainerScript:
        """How the script starts the unit's container (``script``: its set-up, run and
        teardown on one node): as it is, or once per task on every node (a gang)."""
        ...

    def units(self, gw: Gateway, job: Job) -> list[Unit]:
        """The job's units, in order."""
        ...

    def unit(self, gw: Gateway, job: Job, index: int | None) -> Unit:
        """The unit ``index`` (None: the one a person means by default); InvalidInput
        names the units there are."""
        ...

    def load_units(self, gw: Gateway, job: Job, index: int | None) -> list[Unit]:
        """The units whose load `gw job top` shows: unit ``index``, or (None) those a
        person means by default (a gang: every rank, each on its node)."""
        ...

    def unit_of_record(self, gw: Gateway, job: Job, record: SpoolRecord) -> Unit | str:
        """The unit a spool record is the end of, or why the record fits no unit."""
        ...

    def follow(self, gw: Gateway, job: Job, unit: Unit, live: SlurmJobState) -> None:
        """A unit Slurm still has queued or running: record what it says."""
        ...

    def end_unit(self, gw: Gateway, job: Job, unit: Unit, end: EndDecision,
                 record: SpoolRecord | None, facts: dict[str, Any]) -> bool:
        """Record a unit's decided end (the kind's end handler first); then the job's end
        when it follows. Returns whether the job ended by this call."""
        ...

    def lost(self, gw: Gateway, job: Job, unit: Unit, why: str) -> None:
        """Slurm no longer knows a unit that wrote no spool file."""
        ...

    def adopted_id(self, found: SlurmJobState) -> str:
        """The Slurm id to record for a job found by its identity in ``found``."""
        ...

    def summary(self, gw: Gateway, job: Job) -> dict[str, Any]:
        """What `gw job show` adds for this shape (its units' states)."""
        ...

    def outputs(self, gw: Gateway, job: Job) -> list[tuple[Path, str]]:
        """(path, name in the archive) of what `gw job outputs` packs besides the logs
        of the job's own directory and its script."""
        ...

    def rerun_extra(self, job: Job, command: tuple[str, ...]) -> dict[str, Any]:
        """What a rerun of ``job`` keeps of the shape (an array: its tasks); InvalidInput
        for what it cannot take (a sweep's new command)."""
        ...
