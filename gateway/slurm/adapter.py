"""Parsing what Slurm's commands print. No commands run here, and no gateway states are
made here: gateway/jobs/model.py maps Slurm's state words (one place)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

FIELD_SEP = "\x1f"
SQUEUE_FORMAT = FIELD_SEP.join(["%i", "%T", "%N", "%S", "%r", "%k"])
# Comment needs AccountingStoreFlags=job_comment in slurm.conf (empty otherwise).
# JobID is ARRAY_TASK for the tasks of a job array (JobIDRaw is each task's own id).
SACCT_FIELDS = "JobIDRaw,State,ExitCode,NodeList,Start,End,JobID,Comment"
SINFO_FORMAT = FIELD_SEP.join(["%P", "%c", "%m", "%G", "%l", "%a", "%f", "%D"])

UNAVAILABLE_PATTERNS = ("Socket timed out", "Unable to contact slurm controller",
                        "Connection refused", "Zero Bytes were transmitted",
                        "Transport endpoint is not connected")


@dataclass(frozen=True)
class SlurmJobState:
    """What Slurm says about one job."""

    slurm_job_id: str
    slurm_state: str      # Slurm's own words, e.g. "CANCELLED by 0"
    node: str = ""
    exit_code: int | None = None
    start: float | None = None
    end: float | None = None
    reason: str = ""
    comment: str = ""     # the gateway's identity of the job (gw:<home id>:<job id>)
    array_task: str = ""  # ARRAY_TASK (e.g. 1234_5) for a task of a job array

    @property
    def base_id(self) -> str:
        """The id the job was submitted as: an array task's array job id."""
        return (self.array_task or self.slurm_job_id).split("_")[0]


@dataclass(frozen=True)
class PartitionLimits:
    """The largest node of a partition."""

    name: str
    cpus: int
    mem_mib: int
    gpus: int
    default: bool
    available: bool
    max_time_seconds: int | None = None   # the partition's MaxTime; None: no limit
    gpu_types: frozenset[str] = frozenset()   # GPU types (gres gpu:TYPE:N) of its nodes
    features: frozenset[str] = frozenset()    # node features (--constraint) of its nodes
    nodes: int = 0                            # how many nodes it has


def is_unavailable(stderr: str) -> bool:
    """True when ``stderr`` says slurmctld could not be reached (state UNKNOWN, not failed)."""
    return any(p in stderr for p in UNAVAILABLE_PATTERNS)


def parse_sbatch_output(stdout: str) -> str | None:
    """The job id from ``sbatch --parsable`` output (``123`` or ``123;cluster``)."""
    for line in stdout.strip().splitlines()[::-1]:
        match = re.fullmatch(r"(\d+)(?:;\S+)?", line.strip())
        if match:
            return match.group(1)
    return None


def _timestamp(text: str) -> float | None:
    text = text.strip()
    if not text or text in ("Unknown", "None", "N/A"):
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def parse_squeue(stdout: str) -> dict[str, SlurmJobState]:
    """Parse ``squeue -h -o SQUEUE_FORMAT`` output, keyed by Slurm job id."""
    jobs = {}
    for line in stdout.splitlines():
        parts = line.split(FIELD_SEP)
        if len(parts) != 6:
            continue
        job_id, state, node, start, reason, comment = (p.strip() for p in parts)
        jobs[job_id] = SlurmJobState(job_id, state, node, start=_timestamp(start),
                                     reason="" if reason == "None" else reason,
                                     comment="" if comment == "(null)" else comment,
                                     array_task=job_id if "_" in job_id else "")
    return jobs


def parse_exit_code(text: str) -> int | None:
    """``0:0`` -> 0, ``1:0`` -> 1, ``0:15`` (killed by signal 15) -> 128+15."""
    code, _sep, signal = text.strip().partition(":")
    if not code.isdigit():
        return None
    if int(code) == 0 and signal.isdigit() and int(signal):
        return 128 + int(signal)
    return int(code)


def parse_sacct(stdout: str) -> dict[str, SlurmJobState]:
    """Parse ``sacct -X -P -n -o SACCT_FIELDS`` output, keyed by Slurm job id."""
    jobs = {}
    for line in stdout.splitlines():
        parts = line.split("|", 7)
        if len(parts) != 8:
            continue
        job_id, state, exit_code, node, start, end, shown_id, comment = (p.strip()
                                                                         for p in parts)
        # A job never given a node never started: Slurm 22.05 puts the end (a cancel
        # while pending) as its Start, 24.11 "None".
        never_ran = node == "None assigned"
        jobs[job_id] = SlurmJobState(job_id, state, "" if never_ran else node,
                                     parse_exit_code(exit_code),
                                     None if never_ran else _timestamp(start),
                                     _timestamp(end), comment=comment,
                                     array_task=shown_id if "_" in shown_id else "")
    return jobs


def _int_prefix(text: str) -> int:
    match = re.match(r"\d+", text.strip())
    return int(match.group(0)) if match else 0


def parse_gres_gpus(gres: str) -> int:
    """GPUs per node from a gres string like ``gpu:a100:4(S:0-1),shard:8`` or ``(null)``."""
    total = 0
    for item in gres.split(","):
        fields = item.split("(")[0].split(":")
        if fields[0] == "gpu" and len(fields) >= 2:
            total += _int_prefix(fields[-1])
    return total


def parse_duration(text: str) -> int | None:
    """Seconds in a Slurm time limit as sinfo prints it (``infinite``, ``30:00``,
    ``1:00:00``, ``2-00:00:00``); None for no limit or a form not understood."""
    text = text.strip()
    match = re.fullmatch(r"(?:([0-9]+)-)?(?:([0-9]+):)?([0-9]+):([0-9]+)", text)
    if match:
        days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
        return ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    match = re.fullmatch(r"([0-9]+)-([0-9]+)", text)
    if match:
        return (int(match.group(1)) * 24 + int(match.group(2))) * 3600
    if text.isdigit():
        return int(text) * 60
    return None


def parse_gres_types(gres: str) -> frozenset[str]:
    """GPU types a gres string names (``gpu:a100:4,gpu:v100:2`` -> {a100, v100})."""
    types = set()
    for item in gres.split(","):
        fields = item.split("(")[0].split(":")
        if fields[0] == "gpu" and len(fields) >= 3:
            types.add(fields[1])
    return frozenset(types)


def parse_features(text: str) -> frozenset[str]:
    """Node features as sinfo prints them (``a100,ib`` or ``(null)``)."""
    text = text.strip()
    return frozenset() if text in ("", "(null)") else frozenset(
        f.strip() for f in text.split(",") if f.strip())


def parse_sinfo(stdout: str) -> dict[str, PartitionLimits]:
    """Per partition, the largest node (CPUs, memory, GPUs), and the GPU types and node
    features any of its nodes has, from ``sinfo -h -o SINFO_FORMAT``."""
    partitions: dict[str, PartitionLimits] = {}
    default_names = set()
    for line in stdout.splitlines():
        parts = line.split(FIELD_SEP)
        if len(parts) == 7:     # an sinfo line without the node count
            parts.append("1")
        if len(parts) != 8:
            continue
        name, cpus, mem, gres, limit, avail, features, count = (p.strip() for p in parts)
        if name.endswith("*"):
            name = name[:-1]
            default_names.add(name)
        limits = PartitionLimits(name, _int_prefix(cpus), _int_prefix(mem),
                                 parse_gres_gpus(gres), False, avail == "up",
                                 parse_duration(limit), parse_gres_types(gres),
                                 parse_features(features), _int_prefix(count))
        old = partitions.get(name)
        if old:
            limits = replace(old, cpus=max(old.cpus, limits.cpus),
                             mem_mib=max(old.mem_mib, limits.mem_mib),
                             gpus=max(old.gpus, limits.gpus),
                             gpu_types=old.gpu_types | limits.gpu_types,
                             features=old.features | limits.features,
                             nodes=old.nodes + limits.nodes)
        partitions[name] = limits
    return {n: replace(p, default=n in default_names) for n, p in partitions.items()}


@dataclass(frozen=True)
class NodeFree:
    """What one node of a partition has free now."""

    node: str
    partition: str
    idle_cpus: int
    free_mem_mib: int
    idle_gpus: int
    state: str


NODES_FORMAT = ",".join(f"{name}:|" for name in (
    "NodeHost", "Partition", "CPUsState", "Memory", "AllocMem", "Gres", "GresUsed",
    "StateCompact"))


def parse_nodes_free(stdout: str) -> list[NodeFree]:
    """Parse ``sinfo -N -h -O NODES_FORMAT``: idle CPUs (from A/I/O/T), memory not
    allocated, GPUs not in use, per node and partition."""
    nodes = []
    for line in stdout.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) < 8:
            continue
        node, partition, cpus, memory, alloc, gres, used, state = parts[:8]
        counts = cpus.split("/")
        idle = int(counts[1]) if len(counts) == 4 and counts[1].isdigit() else 0
        nodes.append(NodeFree(node, partition.rstrip("*"), idle,
                              max(0, _int_prefix(memory) - _int_prefix(alloc)),
                              max(0, parse_gres_gpus(gres) - parse_gres_gpus(used)),
                              state))
    return nodes


def parse_test_only(stderr: str) -> dict[str, str] | None:
    """``sbatch --test-only``'s estimate: "Job 12 to start at 2026-11-25T10:00:00 using 2
    processors on nodes n1 in partition gpu" -> start, processors, nodes, partition."""
    match = re.search(r"to start at (\S+) using (\d+) processors on nodes (\S+)"
                      r"(?: in partition (\S+))?", stderr)
    if not match:
        return None
    start, processors, nodes, partition = match.groups()
    return {"start": start, "processors": processors, "nodes": nodes,
            "partition": partition or ""}


def array_task_indexes(array_task: str) -> list[int]:
    """The task indexes an ``ARRAY_TASK`` id stands for: ``12_3`` -> [3]; a pending
    remainder ``12_[4-6,9%2]`` -> [4, 5, 6, 9]."""
    _base, _sep, part = array_task.partition("_")
    part = part.strip("[]").split("%")[0]
    indexes: list[int] = []
    for item in part.split(","):
        low, dash, high = item.partition("-")
        if low.isdigit() and (not dash or high.isdigit()):
            indexes.extend(range(int(low), int(high if dash else low) + 1))
    return indexes


def array_tasks(states: Iterable[SlurmJobState]) -> dict[str, SlurmJobState]:
    """Array task records keyed ``ARRAY_TASK`` (``12_3``), one per task: a pending
    remainder (``12_[1-2%1]``, how accounting keeps tasks that never started) stands for
    each of its tasks, and a task's own record wins over it."""
    found: dict[str, SlurmJobState] = {}
    for state in sorted((s for s in states if s.array_task),
                        key=lambda s: "[" not in s.array_task):
        for index in array_task_indexes(state.array_task):
            found[f"{state.base_id}_{index}"] = state
    return found


def parse_cpu_time(text: str) -> float | None:
    """Slurm's TotalCPU/Elapsed (``[D-][HH:]MM:SS[.mmm]``) in seconds."""
    text = text.strip()
    if not text:
        return None
    days, _sep, rest = text.rpartition("-")
    parts = rest.split(":")
    try:
        seconds = sum(float(p) * 60.0 ** i for i, p in enumerate(reversed(parts)))
        return seconds + (int(days) * 86400 if days else 0)
    except ValueError:
        return None


def parse_size_bytes(text: str) -> int | None:
    """Slurm's MaxRSS (``11596K``, ``2.5G``, ``0``) in bytes."""
    text = text.strip()
    if not text:
        return None
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    factor = units.get(text[-1].upper(), 1)
    try:
        return int(float(text[:-1] if text[-1].upper() in units else text) * factor)
    except ValueError:
        return None


def parse_sacct_usage(stdout: str) -> dict[str, float | int | None]:
    """``sacct -j ID -P -n -o JobID,MaxRSS,TotalCPU,Elapsed`` (allocation and steps): the
    peak memory of any step, the job's CPU time and its elapsed time."""
    peak, cpu, elapsed = None, None, None
    for line in stdout.splitlines():
        fields = line.split("|")
        if len(fields) < 4:
            continue
        job_id, max_rss, total_cpu, wall = fields[:4]
        rss = parse_size_bytes(max_rss)
        if rss is not None:
            peak = max(peak or 0, rss)
        if "." not in job_id:  # the allocation: totals over its steps
            cpu = parse_cpu_time(total_cpu) if cpu is None else cpu
            elapsed = parse_cpu_time(wall) if elapsed is None else elapsed
    return {"max_rss_bytes": peak, "cpu_seconds": cpu, "elapsed_seconds": elapsed}
