"""Resource flavors: named shapes of job a site defines, e.g.

    [flavors.gpu-1]
    cpus = 8
    gpus = 1            # or "a100:1"
    mem = "64G"
    shm = "16G"
    partition = "gpu"
    time = "1-00:00:00"
    # account, qos, constraint, exclusive as well; restarts, restart_on_failure and
    # save_seconds for a partition that preempts (docs/resume.md)

`--flavor NAME` takes its values; options given on the command line override them. A
user's configuration may add flavors or replace a site's of the same name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.common.errors import InvalidInput
from gateway.common.specs import (
    CONSTRAINT_RE,
    SLURM_WORD_RE,
    check_name,
    parse_gpus,
    parse_size_mib,
    parse_time_seconds,
)

_FIELDS: dict[str, tuple[type, ...]] = {
    "cpus": (int,), "gpus": (int, str), "mem": (str,), "shm": (str,), "time": (str,),
    "partition": (str,), "account": (str,), "qos": (str,), "constraint": (str,),
    "exclusive": (bool,), "nodes": (int,), "tasks_per_node": (int,), "restarts": (int,),
    "restart_on_failure": (bool,), "save_seconds": (int,)}


@dataclass(frozen=True)
class Flavor:
    """A named set of resource values (None: not set by the flavor)."""

    name: str
    cpus: int | None = None
    gpus: int | str | None = None
    mem: str | None = None
    shm: str | None = None
    time: str | None = None
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    exclusive: bool | None = None
    nodes: int | None = None
    tasks_per_node: int | None = None
    restarts: int | None = None          # a preemptible partition's flavor resumes jobs
    restart_on_failure: bool | None = None
    save_seconds: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """The values it sets."""
        return {k: getattr(self, k) for k in _FIELDS if getattr(self, k) is not None}


def parse_flavor(name: str, table: Any, where: str) -> Flavor:
    """One ``[flavors.NAME]`` table, checked: every error names the file and the key."""
    check_name(name, "flavor")
    if not isinstance(table, dict):
        raise InvalidInput(f"{where}: flavors.{name} must be a table of resource values")
    values: dict[str, Any] = {}
    for key, value in table.items():
        kinds = _FIELDS.get(key)
        if kinds is None:
            raise InvalidInput(f"{where}: flavors.{name}.{key} is not a resource; known: "
                               f"{', '.join(_FIELDS)}")
        if not isinstance(value, kinds) or (int in kinds and bool not in kinds
                                             and isinstance(value, bool)):
            raise InvalidInput(f"{where}: flavors.{name}.{key} has the wrong type: {value!r}")
        values[key] = value
    try:
        _check_values(values)
    except InvalidInput as exc:
        raise InvalidInput(f"{where}: flavors.{name}: {exc}") from exc
    return Flavor(name=name, **values)


def flavors(config: Any) -> dict[str, Flavor]:
    """Every flavor the configuration defines, by name."""
    tables = config["flavors"] or {}
    where = config.sources.get("flavors", "configuration")
    return {name: parse_flavor(name, table, where) for name, table in sorted(tables.items())}


def get_flavor(config: Any, name: str) -> Flavor:
    """The flavor called ``name``; a clear error listing the others."""
    known = flavors(config)
    if name not in known:
        raise InvalidInput(f"no flavor {name!r}; flavors: {', '.join(known) or 'none'} "
                           "(defined in the site or user configuration, see `gw flavors`)")
    return known[name]


def available_now(gw: Any) -> list[dict[str, Any]]:
    """Each flavor with its resolved resources and how many such jobs fit on idle nodes
    (a job of several nodes needs its share, every task of it, on each of them)."""
    from gateway.common.specs import format_mib, format_time, parse_resources

    nodes = gw.slurm.nodes_free()
    partitions = gw.slurm.partitions()
    default = next((p.name for p in partitions.values() if p.default), "")
    shown = []
    for flavor in flavors(gw.config).values():
        res = parse_resources(cpus=None, gpus=None, mem=None, shm=None, time=None,
                              partition=None, flavor=flavor, defaults=gw.config)
        partition = res.partition or default
        fits = 0
        for node in nodes:
            if node.partition != partition or not node.state.startswith(("idle", "mix")):
                continue
            counts = [node.idle_cpus // (res.cpus * res.tasks_per_node),
                      node.free_mem_mib // res.slurm_mem_mib]
            if res.gpus:
                counts.append(node.idle_gpus // res.gpus)
            fits += 1 if res.exclusive and node.state.startswith("idle") and min(counts) \
                else (0 if res.exclusive else min(counts))
        fits //= res.nodes
        shown.append({"name": flavor.name, "partition": res.partition,
                      "nodes": res.nodes, "tasks_per_node": res.tasks_per_node,
                      "cpus": res.cpus, "gpus": res.gpus_text, "mem": format_mib(res.mem_mib),
                      "shm": format_mib(res.shm_mib), "time": format_time(res.time_seconds),
                      "account": res.account, "qos": res.qos, "constraint": res.constraint,
                      "exclusive": res.exclusive, "fits_now": fits,
                      "partition_exists": partition in partitions})
    return shown


def _check_values(values: dict[str, Any]) -> None:
    """Each value of a flavor as its option checks it."""
    for key, what in (("cpus", "CPU"), ("nodes", "node"), ("tasks_per_node", "task")):
        if values.get(key) is not None and values[key] < 1:
            raise InvalidInput(f"{key}: at least 1 {what}")
    if "gpus" in values:
        parse_gpus(values["gpus"])
    if "mem" in values:
        parse_size_mib(values["mem"], "mem", 16)
    if "shm" in values:
        parse_size_mib(values["shm"], "shm")
    if "time" in values:
        parse_time_seconds(values["time"])
    for key in ("partition", "account", "qos"):
        if key in values and not SLURM_WORD_RE.fullmatch(values[key]):
            raise InvalidInput(f"invalid {key} {values[key]!r}")
    if values.get("restarts") is not None and not 0 <= values["restarts"] <= 100:
        raise InvalidInput("restarts: 0 to 100")
    if values.get("save_seconds") is not None and values["save_seconds"] < 10:
        raise InvalidInput("save_seconds: at least 10")
    if "constraint" in values and not CONSTRAINT_RE.fullmatch(values["constraint"]):
        raise InvalidInput(f"invalid constraint {values['constraint']!r}")
