"""The ``gang`` shape: N nodes x T tasks of one distributed job (torch.distributed, torchrun,
Lightning, Accelerate).

The batch script, on the first node, picks the rendezvous (``MASTER_ADDR``: the first
node's address; ``MASTER_PORT``: a port free there) and starts every task with one
``srun``. Each task mounts and runs its own container on its node (the container's set-up,
run and teardown move into the task: templates/sbatch/gang_task.sh.j2), with the usual
mounts over the job's one /code and /model and the environment PyTorch expects (RANK,
LOCAL_RANK, WORLD_SIZE, ... from Slurm's task ids). ``srun --kill-on-bad-exit`` ends the
whole gang when one task fails. The job is one unit for its end: one spool file, one end
decision, one model version harvested with every node in its lineage. Each rank keeps its
own output and load samples in ``tasks/<rank>/``, for `gw job logs --task` and `gw job top`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.common.errors import InvalidInput
from gateway.jobs.shapes.single import SingleShape
from gateway.jobs.values import Unit

if TYPE_CHECKING:
    from containers.runtime import ContainerScript
    from gateway.common.specs import Resources
    from gateway.context import Gateway
    from gateway.jobs.end import EndDecision
    from gateway.jobs.model import Job
    from gateway.jobs.request import JobRequest
    from gateway.jobs.values import SubmitContext
    from spool.format import SpoolRecord

LAUNCHERS = ("srun", "torchrun")
NODE_FILE = "node"       # in a rank's directory: the node it ran on
EXIT_FILE = "exit"       # in a rank's directory: its exit status, when it was not 0
TASK_MARKER = "GW_TASK_SCRIPT"  # ends the task script's here-document in the batch script
# The rendezvous as PyTorch reads it (torch.distributed's env:// and torchrun's own
# PET_* options): the shell variables are Slurm's task ids or what the script computed.
RANK_ENV: tuple[tuple[str, str], ...] = (
    ("MASTER_ADDR", "gw_master_addr"), ("MASTER_PORT", "gw_master_port"),
    ("WORLD_SIZE", "SLURM_NTASKS"), ("RANK", "SLURM_PROCID"), ("LOCAL_RANK", "SLURM_LOCALID"),
    ("LOCAL_WORLD_SIZE", "gw_tasks_per_node"), ("NODE_RANK", "SLURM_NODEID"),
    ("GROUP_RANK", "SLURM_NODEID"), ("GW_NODES", "gw_nodes"), ("GW_RANK", "SLURM_PROCID"),
    ("PET_NNODES", "SLURM_NNODES"), ("PET_NODE_RANK", "SLURM_NODEID"),
    ("PET_MASTER_ADDR", "gw_master_addr"), ("PET_MASTER_PORT", "gw_master_port"))
# The site's interconnect settings (a module, a TaskProlog) pass into every container.
PASSED_PREFIXES = ("NCCL_", "GLOO_", "UCX_", "FI_", "OMPI_", "PMIX_", "I_MPI_", "TORCH_NCCL_")


def is_gang(resources: Resources, launcher: str | None) -> bool:
    """Whether a job of these resources runs as a gang (more than one rank, or a
    launcher named)."""
    return resources.tasks > 1 or launcher is not None


# A resumable gang's batch script tells every rank to save through a file in the job's
# units directory, one per attempt; each task watches for it and passes SIGUSR1 into its
# own container (templates/sbatch/gang_task.sh.j2). Not a Slurm signal to the step: that
# reaches every process of a task, bwrap too, which dies of it.
SAVE_FLAG = "save-now"


class GangShape(SingleShape):
    """The ``gang`` shape: a single job's end and record, with ranks for its output."""

    name = "gang"
    macros = "sbatch/shapes/gang.sh.j2"
    reruns_as = "gang"
    renders_as = "rendered_gang"
    resumes = True      # the whole gang is requeued; every rank gets the save signal
    node_env = RANK_ENV
    passed_prefixes = PASSED_PREFIXES

    def label(self, kind: str) -> str:
        """The kind, and that it is distributed."""
        return f"{kind} gang"

    def check_request(self, request: JobRequest) -> None:
        """A command job of a kind that gangs, with the gateway's template."""
        from gateway.jobs.kinds import get_kind

        if not get_kind(request.kind).gangs:
            raise InvalidInput("only command jobs run on several nodes or tasks "
                               "(not notebooks or --notebook ones)")
        if request.extra.get("sbatch_template"):
            raise InvalidInput("a distributed job runs with the gateway's gang template: no "
                               "--sbatch-template")
        launcher = request.extra.get("launcher", "srun")
        if launcher not in LAUNCHERS:
            raise InvalidInput(f"unknown --launcher {launcher!r}; known: {', '.join(LAUNCHERS)}")

    def sbatch_options(self, job: Job, resources: Resources) -> list[tuple[str, object]]:
        """N nodes, T tasks on each; the batch script's output in the job's directory."""
        from gateway.common.quoting import slurm_filename

        return [("output", slurm_filename(job.job_dir) + "/slurm-%j.out"),
                ("nodes", resources.nodes), ("ntasks-per-node", resources.tasks_per_node)]

    def prepare(self, ctx: SubmitContext) -> None:
        """``tasks/<rank>/`` for every rank's output and load samples."""
        resources = ctx.job.spec.resources
        layout = ctx.job.layout
        layout.units.mkdir(mode=0o700)
        for rank in range(int(resources["nodes"]) * int(resources["tasks_per_node"])):
            layout.unit_dir(rank).mkdir(mode=0o700)

    def template_values(self, ctx: SubmitContext) -> dict[str, Any]:
        """How many ranks run on each node."""
        return {"tasks_per_node": int(ctx.job.spec.resources["tasks_per_node"])}

    def units_dir(self, ctx: SubmitContext) -> str:
        """Where the ranks keep their output and samples, as shell text on the node."""
        from gateway.common.quoting import shell_word

        return shell_word(str(ctx.job.layout.units))

    def launch(self, ctx: SubmitContext, script: ContainerScript) -> ContainerScript:
        """One ``srun`` from the batch script; each task sets up, runs and tears down its
        own container (templates/sbatch/gang_task.sh.j2)."""
        from containers.runtime import ContainerScript
        from gateway.common.templating import render

        resources = ctx.job.spec.resources
        task = render("sbatch/gang_task.sh.j2", container=script,
                      units_dir=self.units_dir(ctx),
                      gpus=int(resources.get("gpus") or 0),
                      tasks_per_node=int(resources["tasks_per_node"]),
                      node_file=NODE_FILE, exit_file=EXIT_FILE,
                      resume=bool(int(resources.get("restarts") or 0)),
                      save_flag=SAVE_FLAG)
        if any(line == TASK_MARKER for line in task.splitlines()):
            raise InvalidInput(f"the command holds a line {TASK_MARKER!r}, which ends the "
                               "gang's task script")
        return ContainerScript(
            setup=": # each task sets up its own container (gw_task below)",
            run=render("sbatch/gang_launch.sh.j2", task=task.rstrip("\n"),
                       marker=TASK_MARKER).rstrip("\n"),
            teardown=": # each task tears down its own container",
            signal=f"gw_signal_command() {{ : > {self.units_dir(ctx)}/{SAVE_FLAG}."
                   '"$gw_attempt"; }')



    # ---- a recorded job ------------------------------------------------------------------
    def _ranks(self, job: Job) -> int:
        resources = job.spec.resources
        return int(resources.get("nodes") or 1) * int(resources.get("tasks_per_node") or 1)

    def _rank_unit(self, job: Job, rank: int) -> Unit:
        directory = job.layout.unit_dir(rank)
        node = _read_word(directory / NODE_FILE)
        return Unit(index=rank, directory=directory, slurm_id=job.slurm_job_id,
                    state=job.state, reason=job.reason, spool_name=f"{job.id}.json",
                    label=f"rank {rank}" + (f" on {node}" if node else ""))

    def units(self, gw: Gateway, job: Job) -> list[Unit]:
        """The job itself (it ends as one), with every node its ranks ran on."""
        unit = super().units(gw, job)[0]
        nodes = self.nodes(job)
        return [Unit(index=None, directory=unit.directory, slurm_id=unit.slurm_id,
                     state=unit.state, reason=unit.reason, spool_name=unit.spool_name,
                     lineage={"nodes": nodes} if nodes else {},
                     model_version_id=unit.model_version_id, model_ref=unit.model_ref)]

    def unit(self, gw: Gateway, job: Job, index: int | None) -> Unit:
        """The job (its output has every rank's lines, prefixed by rank), or rank ``index``."""
        if index is None:
            return self.units(gw, job)[0]
        ranks = self._ranks(job)
        if not 0 <= index < ranks:
            raise InvalidInput(f"job {job.id} has ranks 0 to {ranks - 1}; no rank {index}")
        return self._rank_unit(job, index)

    def load_units(self, gw: Gateway, job: Job, index: int | None) -> list[Unit]:
        """Every rank (each samples its own node), or rank ``index``."""
        if index is not None:
            return [self.unit(gw, job, index)]
        return [self._rank_unit(job, rank) for rank in range(self._ranks(job))]

    def nodes(self, job: Job) -> list[str]:
        """The nodes the ranks ran on, in rank order, each once."""
        found: list[str] = []
        for rank in range(self._ranks(job)):
            node = _read_word(job.layout.unit_dir(rank) / NODE_FILE)
            if node and node not in found:
                found.append(node)
        return found

    def end_unit(self, gw: Gateway, job: Job, unit: Unit, end: EndDecision,
                 record: SpoolRecord | None, facts: dict[str, Any]) -> bool:
        """As a single job, naming the ranks that failed and the nodes they were on."""
        failed = self.failed_ranks(job)
        if failed and end.state != "COMPLETED":
            end = end._replace(reason="; ".join(p for p in (failed, end.reason) if p))
        nodes = self.nodes(job)
        if nodes:
            facts = {**facts, "node": ",".join(nodes)}
        return super().end_unit(gw, job, unit, end, record, facts)

    def failed_ranks(self, job: Job) -> str:
        """"rank 1 on node2 exited with status 3 first": the rank that failed by itself
        first (the others may have failed because it did), and how many failed in all."""
        failures: list[tuple[float, int, str]] = []
        for rank in range(self._ranks(job)):
            words = _read_words(job.layout.unit_dir(rank) / EXIT_FILE)
            if words:
                at = float(words[1]) if len(words) > 1 and _is_number(words[1]) else 0.0
                failures.append((at, rank, words[0]))
        if not failures:
            return ""
        _at, rank, status = min(failures)
        node = _read_word(job.layout.unit_dir(rank) / NODE_FILE)
        first = (f"rank {rank}" + (f" on {node}" if node else "")
                 + f" exited with status {status}")
        if len(failures) == 1:
            return first
        return f"{first}, the first of {len(failures)} ranks that failed"

    def summary(self, gw: Gateway, job: Job) -> dict[str, Any]:
        """Its nodes, ranks and launcher."""
        resources = job.spec.resources
        return {"nodes": self.nodes(job), "node_count": int(resources.get("nodes") or 1),
                "tasks_per_node": int(resources.get("tasks_per_node") or 1),
                "ranks": self._ranks(job),
                "launcher": job.spec.extra.get("launcher") or "srun"}

    def outputs(self, gw: Gateway, job: Job) -> list[tuple[Path, str]]:
        """The job's /code and every rank's own output."""
        found = super().outputs(gw, job)
        for rank in range(self._ranks(job)):
            found.extend((log, f"logs/rank-{rank}-{log.name}")
                         for log in sorted(job.layout.unit_dir(rank).glob("slurm-*.out")))
        return found

    def rerun_extra(self, job: Job, command: tuple[str, ...]) -> dict[str, Any]:
        """The same launcher."""
        launcher = job.spec.extra.get("launcher")
        return {"launcher": launcher} if launcher else {}


def _read_words(path: Path) -> list[str]:
    """The words of a small file a task wrote ([] when there is none)."""
    try:
        with path.open("rb") as handle:
            return handle.read(256).decode(errors="replace").split()
    except OSError:
        return []


def _read_word(path: Path) -> str:
    """The first word of such a file ("" when there is none)."""
    words = _read_words(path)
    return words[0] if words else ""


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
