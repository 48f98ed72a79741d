"""Parsing and validating what users type: names, version references, sizes, times, env."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.common.errors import InvalidInput

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
IMAGE_NAME_RE = re.compile(r"[a-z0-9][a-z0-9._/-]{0,127}:[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
ENV_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SIZE_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*", re.IGNORECASE)
UNIT_MIB = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024, "": 1}
# Largest number SQLite stores: larger version numbers cannot exist.
MAX_NUMBER = 2**63 - 1
# A job's memory below this cannot start Python, let alone a container (Slurm would take it).
MIN_MEM_MIB = 16
# Sizes beyond any node (1 PiB) and times beyond a year are typing mistakes.
MAX_SIZE_MIB = 1 << 30
MAX_TIME_SECONDS = 365 * 86400


# Job names are free text, but no longer than this (Slurm keeps the first 128 bytes).
MAX_JOB_NAME = 200


def refuse_control_characters(value: str, what: str) -> str:
    """The one rule for every name a user types: no newline, tab or other control
    character (Unicode's Cc, and the line and paragraph separators) anywhere in it."""
    import unicodedata

    for index, char in enumerate(value):
        if unicodedata.category(char) in ("Cc", "Zl", "Zp"):
            raise InvalidInput(f"invalid {what} {value!r}: it holds a control character "
                               f"(U+{ord(char):04X} at position {index}); names are one "
                               "line of printable text")
    return value


def check_job_name(name: str) -> str:
    """Validate a job name (``--name``): free text on one line, at most 200 characters."""
    refuse_control_characters(name, "job name")
    if not name.strip() or len(name) > MAX_JOB_NAME:
        raise InvalidInput(f"invalid job name {name[:40]!r}: give 1 to {MAX_JOB_NAME} "
                           "characters")
    return name


def check_name(name: str, what: str) -> str:
    """Validate an algorithm, dataset, model, template or flavor name (letters, digits,
    ``._-``)."""
    refuse_control_characters(name, f"{what} name")
    if not NAME_RE.fullmatch(name):
        raise InvalidInput(f"invalid {what} name {name!r}: use letters, digits, '.', '_', '-' "
                           "(at most 100, starting with a letter or digit)")
    return name


DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")


def check_image_name(name: str) -> str:
    """Validate ``NAME:TAG`` (lower-case repository, a tag); ``NAME`` alone means ``:latest``.
    ``NAME:TAG@sha256:...`` pins the exact image (what a rerun uses: the tag may have moved)."""
    refuse_control_characters(name, "image name")
    name, at, digest = name.partition("@")
    if at and not DIGEST_RE.fullmatch(digest):
        raise InvalidInput(f"invalid image digest {digest!r}: expected sha256: and 64 hex "
                           "digits")
    if ":" not in name.rsplit("/", 1)[-1]:
        name = f"{name}:latest"
    if not IMAGE_NAME_RE.fullmatch(name):
        raise InvalidInput(f"invalid image name {name!r}: expected NAME:TAG, e.g. "
                           "detectron2:v1 (lower-case name; tag of letters, digits, '._-')")
    return f"{name}@{digest}" if at else name


@dataclass(frozen=True)
class VersionRef:
    """``NAME``, ``NAME@vN``, or ``OWNER:NAME[@vN]`` for a version another user shares
    (``gw data share``); ``number`` None means the latest version, ``owner`` None the
    person's own store."""

    name: str
    number: int | None
    owner: str | None = None

    def __str__(self) -> str:
        text = self.name if self.number is None else f"{self.name}@v{self.number}"
        return f"{self.owner}:{text}" if self.owner else text


# A Unix user name as sites spell them (POSIX portable, plus the dots some sites use).
USER_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,31}")


def check_user_name(name: str) -> str:
    """Validate the OWNER of ``OWNER:NAME`` (a Unix user name)."""
    if not USER_RE.fullmatch(name):
        raise InvalidInput(f"invalid user name {name!r} before ':': expected a Unix user "
                           "name, as in alice:imagenet@v3")
    return name


def parse_version_ref(text: str, what: str) -> VersionRef:
    """Parse ``[OWNER:]NAME[@vN]`` (``@N`` is accepted too)."""
    owner: str | None = None
    if ":" in text.partition("@")[0]:
        owner, _colon, text = text.partition(":")
        check_user_name(owner)
    name, sep, version = text.partition("@")
    check_name(name, what)
    if not sep:
        return VersionRef(name, None, owner)
    match = re.fullmatch(r"v?([0-9]+)", version)
    if not match or not 1 <= int(match.group(1)) <= MAX_NUMBER:
        raise InvalidInput(f"invalid version {version!r} in {text!r}: expected NAME@vN, e.g. "
                           f"{name}@v2")
    return VersionRef(name, int(match.group(1)), owner)


def parse_size_mib(text: str, what: str = "size", minimum_mib: int = 1) -> int:
    """Parse a Slurm-style size (``512M``, ``16G``, ``1.5T``; no unit means MiB) into whole
    MiB, as Slurm counts them; a size that is not whole MiB, or is below ``minimum_mib``,
    is refused rather than rounded in silence."""
    match = SIZE_RE.fullmatch(str(text))
    if not match:
        raise InvalidInput(f"invalid {what} {text!r}: expected a number with an optional unit "
                           "K, M, G or T, e.g. 16G")
    mib = float(match.group(1)) * UNIT_MIB[match.group(2).upper()]
    if mib > MAX_SIZE_MIB:
        raise InvalidInput(f"invalid {what} {text!r}: larger than any node")
    if mib != math.floor(mib):
        raise InvalidInput(f"invalid {what} {text!r}: sizes are whole MiB (e.g. "
                           f"{max(minimum_mib, math.ceil(mib))}M)")
    if mib < minimum_mib:
        raise InvalidInput(f"invalid {what} {text!r}: at least {minimum_mib}M")
    return int(mib)


def format_mib(mib: int) -> str:
    """Render MiB the way Slurm accepts it (``16G`` when whole gigabytes, else ``1536M``)."""
    if mib % (1024 * 1024) == 0:
        return f"{mib // (1024 * 1024)}T"
    if mib % 1024 == 0:
        return f"{mib // 1024}G"
    return f"{mib}M"


_TIME_FORMS = [
    re.compile(r"(?P<m>\d+)"),
    re.compile(r"(?P<m>\d+):(?P<s>\d+)"),
    re.compile(r"(?P<h>\d+):(?P<m>\d+):(?P<s>\d+)"),
    re.compile(r"(?P<d>\d+)-(?P<h>\d+)"),
    re.compile(r"(?P<d>\d+)-(?P<h>\d+):(?P<m>\d+)"),
    re.compile(r"(?P<d>\d+)-(?P<h>\d+):(?P<m>\d+):(?P<s>\d+)"),
]


def parse_time_seconds(text: str) -> int:
    """Parse a Slurm time limit (``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH[:MM[:SS]]``)."""
    for form in _TIME_FORMS:
        match = form.fullmatch(str(text).strip())
        if match:
            parts = {k: int(v) for k, v in match.groupdict().items() if v is not None}
            minutes_capped = "h" in parts or "d" in parts
            if parts.get("s", 0) > 59 or (minutes_capped and parts.get("m", 0) > 59) \
                    or ("d" in parts and parts.get("h", 0) > 23):
                break
            seconds = (parts.get("d", 0) * 86400 + parts.get("h", 0) * 3600
                       + parts.get("m", 0) * 60 + parts.get("s", 0))
            if seconds <= 0:
                break
            if seconds > MAX_TIME_SECONDS:
                raise InvalidInput(f"invalid time {text!r}: more than a year")
            return seconds
    raise InvalidInput(f"invalid time {text!r}: expected D-HH:MM:SS, HH:MM:SS, MM:SS or "
                       "minutes, e.g. 0-02:00:00")


def format_time(seconds: int) -> str:
    """Render seconds as ``D-HH:MM:SS``."""
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{days}-{hours:02d}:{minutes:02d}:{secs:02d}"


def parse_env(pairs: list[str] | tuple[str, ...],
              environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Parse ``NAME=VALUE`` items (the value taken literally: quotes, newlines and all) and
    ``NAME`` items, whose value comes from ``environ`` (the submitter's environment), so
    that a secret need not appear on any command line, not even gw's own."""
    environ = os.environ if environ is None else environ
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not ENV_KEY_RE.fullmatch(key):
            raise InvalidInput(f"invalid --env {pair!r}: expected NAME=VALUE or NAME, with NAME "
                               "made of letters, digits and '_'")
        if not sep:
            if key not in environ:
                raise InvalidInput(f"--env {key}: {key} is not set in your environment")
            value = environ[key]
        env[key] = value
    return env


def parse_params(pairs: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``KEY=VALUE`` items for a notebook's parameters cell (KEY a Python identifier)."""
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise InvalidInput(f"invalid --param {pair!r}: expected NAME=VALUE with NAME a "
                               "Python variable name")
        _check_no_nul(value, f"--param {key}")
        params[key] = value
    return params


def _check_no_nul(value: str, what: str) -> None:
    if "\0" in value:
        raise InvalidInput(f"{what} holds a NUL byte")


@dataclass(frozen=True)
class Resources:
    """What a job asks Slurm for. ``mem_mib`` excludes ``shm_mib``; Slurm gets the sum."""

    cpus: int
    gpus: int
    mem_mib: int
    shm_mib: int
    time_seconds: int
    partition: str
    gpu_type: str = ""          # --gres=gpu:TYPE:N
    account: str = ""
    qos: str = ""
    constraint: str = ""        # Slurm's feature expression, e.g. "a100&ib"
    exclusive: bool = False
    flavor: str = ""            # the site flavor the values came from, if any
    nodes: int = 1              # --nodes: more than one (or tasks_per_node > 1) is a gang
    tasks_per_node: int = 1     # --tasks-per-node: ranks on each node
    restarts: int = 0           # --restarts: requeued after a time limit, preemption or
    restart_on_failure: bool = False   # lost node; also after a failure of its own
    save_seconds: int = 0       # --save-seconds: the signal's lead time (0: the default)

    @property
    def tasks(self) -> int:
        """Ranks in all: nodes x tasks per node."""
        return self.nodes * self.tasks_per_node

    @property
    def slurm_mem_mib(self) -> int:
        """The memory request: the job's memory plus its /dev/shm (tmpfs pages are RAM)."""
        return self.mem_mib + self.shm_mib

    @property
    def gpus_text(self) -> str:
        """``--gpus`` as typed: ``2`` or ``a100:2``."""
        return f"{self.gpu_type}:{self.gpus}" if self.gpu_type else str(self.gpus)

    def as_dict(self) -> dict[str, object]:
        """Stable fields for ``--json`` and lineage."""
        return {"cpus": self.cpus, "gpus": self.gpus, "gpu_type": self.gpu_type,
                "mem": format_mib(self.mem_mib), "shm": format_mib(self.shm_mib),
                "time": format_time(self.time_seconds), "partition": self.partition,
                "account": self.account, "qos": self.qos, "constraint": self.constraint,
                "exclusive": self.exclusive, "flavor": self.flavor, "nodes": self.nodes,
                "tasks_per_node": self.tasks_per_node, "restarts": self.restarts,
                "restart_on_failure": self.restart_on_failure,
                "save_seconds": self.save_seconds}

    def signal_lead_seconds(self, default: int) -> int:
        """How long before the time limit a resumable job is signalled to save: the
        asked (or ``default``) lead, at most half the limit (Slurm may signal up to a
        minute early)."""
        return max(min(self.save_seconds or default, self.time_seconds // 2), 1)


MAX_RESTARTS = 100
MIN_SAVE_SECONDS = 10     # Slurm's signal may come this early or up to a minute earlier
SLURM_WORD_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
GPUS_RE = re.compile(r"(?:([A-Za-z0-9][A-Za-z0-9_.-]{0,63}):)?([0-9]{1,4})")
CONSTRAINT_RE = re.compile(r"[A-Za-z0-9_.&|,()\[\]*:-]{1,256}")


def parse_gpus(text: str | int) -> tuple[int, str]:
    """``--gpus N`` or ``--gpus TYPE:N`` -> (N, TYPE)."""
    match = GPUS_RE.fullmatch(str(text).strip())
    if not match:
        raise InvalidInput(f"invalid --gpus {text!r}: expected a count or TYPE:COUNT, e.g. 2 "
                           "or a100:2")
    return int(match.group(2)), match.group(1) or ""


def constraint_features(constraint: str) -> list[str]:
    """The feature names in a Slurm constraint (``[a100*2&ib]|v100`` -> a100, ib, v100)."""
    return [word.split("*")[0] for word in re.split(r"[&|,()\[\]]", constraint)
            if word.split("*")[0]]


def _slurm_word(value: str | None, flag: str) -> str:
    if value is None or value == "":
        return ""
    if not SLURM_WORD_RE.fullmatch(str(value)):
        raise InvalidInput(f"invalid {flag} {value!r}: letters, digits, '.', '_', '-'")
    return str(value)


def parse_resources(*, cpus: int | None, gpus: str | int | None, mem: str | None,
                    shm: str | None, time: str | None, partition: str | None,
                    defaults: Any,
                    account: str | None = None, qos: str | None = None,
                    constraint: str | None = None, exclusive: bool | None = None,
                    flavor: Any = None, nodes: int | None = None,
                    tasks_per_node: int | None = None, one_task_per_node: bool = False,
                    restarts: int | None = None, restart_on_failure: bool | None = None,
                    save_seconds: int | None = None) -> Resources:
    """Resources from the command line, then the flavor's (a gateway.home.flavors.Flavor:
    its fields by these names), then the configured defaults. Tasks per node default, on
    more than one node, to the GPUs per node (one rank per GPU), else 1;
    ``one_task_per_node`` (a launcher such as torchrun that starts the node's ranks
    itself) makes it 1 and refuses more."""
    def pick(given: Any, key: str) -> Any:
        if given is not None:
            return given
        if flavor is not None and getattr(flavor, key) is not None:
            return getattr(flavor, key)
        return defaults[key] if key in ("cpus", "gpus", "mem", "shm", "time",
                                        "partition") else None

    cpus = int(pick(cpus, "cpus"))
    gpu_count, gpu_type = parse_gpus(pick(gpus, "gpus"))
    if cpus < 1:
        raise InvalidInput(f"invalid --cpus {cpus}: at least 1")
    node_count = int(pick(nodes, "nodes") if pick(nodes, "nodes") is not None else 1)
    if node_count < 1:
        raise InvalidInput(f"invalid --nodes {node_count}: at least 1")
    per_node = pick(tasks_per_node, "tasks_per_node")
    if per_node is not None and int(per_node) < 1:
        raise InvalidInput(f"invalid --tasks-per-node {per_node}: at least 1")
    if one_task_per_node and per_node is not None and int(per_node) != 1:
        raise InvalidInput(f"--tasks-per-node {per_node} with --launcher torchrun: torchrun "
                           "starts the node's ranks itself (--nproc-per-node), so it runs "
                           "as one task per node")
    if per_node is None:
        # A job on one node stays one task (a command such as train_net.py --num-gpus 2
        # uses the node's GPUs itself) unless --tasks-per-node says otherwise.
        per_node = 1 if one_task_per_node or node_count == 1 else max(gpu_count, 1)
    restart_count = int(pick(restarts, "restarts") or 0)
    if not 0 <= restart_count <= MAX_RESTARTS:
        raise InvalidInput(f"invalid --restarts {restart_count}: 0 to {MAX_RESTARTS}")
    lead = int(pick(save_seconds, "save_seconds") or 0)
    if lead and not MIN_SAVE_SECONDS <= lead <= 86400:
        raise InvalidInput(f"invalid --save-seconds {lead}: {MIN_SAVE_SECONDS} to 86400")
    on_failure = bool(pick(restart_on_failure, "restart_on_failure"))
    if (lead or on_failure) and not restart_count:
        raise InvalidInput(f"{'--save-seconds' if lead else '--restart-on-failure'} goes "
                           "with --restarts N (how many times the job may run again)")
    constraint = pick(constraint, "constraint") or ""
    if constraint and not CONSTRAINT_RE.fullmatch(constraint):
        raise InvalidInput(f"invalid --constraint {constraint!r}: features joined by & | , "
                           "with [ ] ( ) and *N, e.g. a100&ib")
    return Resources(
        cpus=cpus, gpus=gpu_count, gpu_type=gpu_type,
        mem_mib=parse_size_mib(pick(mem, "mem"), "--mem", MIN_MEM_MIB),
        shm_mib=parse_size_mib(pick(shm, "shm"), "--shm"),
        time_seconds=parse_time_seconds(pick(time, "time")),
        partition=_slurm_word(pick(partition, "partition"), "--partition"),
        account=_slurm_word(pick(account, "account"), "--account"),
        qos=_slurm_word(pick(qos, "qos"), "--qos"),
        constraint=constraint, exclusive=bool(pick(exclusive, "exclusive")),
        flavor=flavor.name if flavor else "", nodes=node_count, tasks_per_node=int(per_node),
        restarts=restart_count, restart_on_failure=on_failure, save_seconds=lead)


def _count(unit: str) -> Callable[[int], str]:
    """How a number of CPUs or GPUs reads in an error: "1 GPU", "2 GPUs"."""
    return lambda n: f"{n} {unit}" + ("" if n == 1 else "s")


def check_against_partitions(resources: Resources, partitions: dict) -> str:
    """Refuse requests no node of the target partition can hold; returns the partition used.

    ``partitions`` maps names to :class:`gateway.slurm.adapter.PartitionLimits`.
    """
    if resources.partition:
        target = partitions.get(resources.partition)
        if target is None:
            raise InvalidInput(f"no partition {resources.partition!r}; partitions: "
                               f"{', '.join(sorted(partitions)) or 'none'}")
    else:
        defaults = [p for p in partitions.values() if p.default]
        if not defaults:
            raise InvalidInput("Slurm has no default partition: name one with --partition")
        target = defaults[0]
    if resources.nodes > max(target.nodes, 1):
        raise InvalidInput(f"--nodes {resources.nodes} asks for more nodes than partition "
                           f"{target.name!r} has ({target.nodes} nodes)")
    per_node = resources.tasks_per_node
    cpus_flag = ("--cpus" if per_node == 1
                 else f"--cpus {resources.cpus} x --tasks-per-node {per_node}")
    checks: list[tuple[str, int, int, Callable[[int], str]]] = [
              (cpus_flag, resources.cpus * per_node, target.cpus, _count("CPU")),
              ("--gpus", resources.gpus, target.gpus, _count("GPU")),
              ("--mem + --shm", resources.slurm_mem_mib, target.mem_mib, format_mib)]
    for flag, wanted, limit, show in checks:
        if wanted > limit:
            raise InvalidInput(f"{flag} asks for {show(wanted)} but the largest node of "
                               f"partition {target.name!r} has {show(limit)}")
    if resources.gpu_type and resources.gpu_type not in target.gpu_types:
        raise InvalidInput(f"--gpus {resources.gpus_text}: no node of partition "
                           f"{target.name!r} has GPUs of type {resources.gpu_type!r} "
                           f"(types: {', '.join(sorted(target.gpu_types)) or 'none'})")
    for feature in constraint_features(resources.constraint):
        if feature not in target.features:
            raise InvalidInput(f"--constraint {resources.constraint}: no node of partition "
                               f"{target.name!r} has the feature {feature!r} (features: "
                               f"{', '.join(sorted(target.features)) or 'none'})")
    if target.max_time_seconds is not None and resources.time_seconds > target.max_time_seconds:
        raise InvalidInput(f"--time asks for {format_time(resources.time_seconds)} but "
                           f"partition {target.name!r} allows at most "
                           f"{format_time(target.max_time_seconds)}")
    return str(target.name)
