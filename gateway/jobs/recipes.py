"""Recipes: a job's options as typed plus its command, and what is done with them.

A template keeps a recipe under a name; `gw template run` lays overrides over it and
fills its ``{{ placeholders }}``; `gw job rerun` makes the *exact* recipe of an earlier
job from what it recorded (the algorithm and dataset versions, the image digest). The
request is then built by the one function that builds every request
(gateway/commands/submit_options.py), so the same recipe renders the same script.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from gateway.common.errors import InvalidInput
from gateway.jobs.model import Job

PLACEHOLDER_RE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_SWEEP_TASKS = 10_000   # Slurm's default MaxArraySize is 1001; sites raise it


def placeholders(command: list[str] | tuple[str, ...]) -> list[str]:
    """The placeholder names in a command, in order of first use."""
    seen: dict[str, None] = {}
    for arg in command:
        for name in PLACEHOLDER_RE.findall(arg):
            seen.setdefault(name)
    return list(seen)


def split_command_line(line: str) -> tuple[str, ...]:
    """A command typed as one line (a web form) as its words, shell-style, with each
    ``{{ name }}`` kept within its word as the CLI's argv keeps it."""
    import shlex

    try:
        return tuple(shlex.split(PLACEHOLDER_RE.sub(lambda m: "{{" + m.group(1) + "}}",
                                                    line)))
    except ValueError as exc:
        raise InvalidInput(f"the command cannot be read as shell words ({exc})") from exc


def fill(command: list[str] | tuple[str, ...], values: dict[str, str]) -> tuple[str, ...]:
    """The command with every ``{{ name }}`` replaced by its value, literally (no quoting
    is needed: each argument stays one argument, and the script quotes it)."""
    missing = [n for n in placeholders(command) if n not in values]
    if missing:
        raise InvalidInput(f"no value for {', '.join('{{ ' + n + ' }}' for n in missing)}: "
                           f"give --set {missing[0]}=VALUE")
    return tuple(PLACEHOLDER_RE.sub(lambda m: values[m.group(1)], arg) for arg in command)


def parse_sets(pairs: tuple[str, ...] | list[str], flag: str = "--set") -> dict[str, str]:
    """``KEY=VALUE`` items (the value taken literally)."""
    values: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not KEY_RE.fullmatch(key):
            raise InvalidInput(f"invalid {flag} {pair!r}: expected KEY=VALUE with KEY made of "
                               "letters, digits and '_'")
        if "\0" in value:
            raise InvalidInput(f"{flag} {key} holds a NUL byte")
        values[key] = value
    return values


def parse_sweeps(pairs: tuple[str, ...] | list[str]) -> list[dict[str, str]]:
    """``--sweep lr=0.1,0.01 --sweep bs=32,64`` -> every combination, in order (the first
    key varies slowest): [{lr: 0.1, bs: 32}, {lr: 0.1, bs: 64}, ...]."""
    axes: dict[str, list[str]] = {}
    for pair in pairs:
        [(key, values)] = parse_sets([pair], "--sweep").items()
        if key in axes:
            raise InvalidInput(f"--sweep {key} is given twice: list its values once, "
                               "separated by commas")
        items = values.split(",")
        if any(item == "" for item in items):
            raise InvalidInput(f"invalid --sweep {key}={values}: empty value (values are "
                               "separated by commas)")
        axes[key] = items
    count = 1
    for items in axes.values():
        count *= len(items)
    if count > MAX_SWEEP_TASKS:
        raise InvalidInput(f"the sweep has {count} combinations; at most {MAX_SWEEP_TASKS}")
    return [dict(zip(axes, combo, strict=True)) for combo in itertools.product(*axes.values())]


def check_values_used(command: list[str] | tuple[str, ...], keys: list[str], flag: str) -> None:
    """Refuse a value for a placeholder the command does not have (a typing mistake)."""
    known = set(placeholders(command))
    unused = [k for k in keys if k not in known]
    if unused:
        have = ", ".join(sorted(known)) or "none"
        raise InvalidInput(f"{flag} {unused[0]}: the command has no {{{{ {unused[0]} }}}} "
                           f"(its placeholders: {have})")


def normalize_options(options: dict[str, Any]) -> dict[str, Any]:
    """Recipe options as this release names them: the sbatch template was ``template``
    before saved recipes and sbatch templates got names of their own."""
    if "template" in options and "sbatch_template" not in options:
        options = {k: v for k, v in options.items() if k != "template"} | {
            "sbatch_template": options["template"]}
    return options


def overlay(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` with each given override replacing the option (lists replace, not extend)."""
    return {**base, **overrides}


def exact_recipe(job: Job) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The recipe that runs ``job`` again exactly: the versions it used (NAME@vN), its
    image by digest, its command, resources and environment."""
    spec = job.spec
    options: dict[str, Any] = {
        "algo": spec.algo, "data": spec.dataset,
        "image": f"{spec.image}@{spec.image_digest}" if spec.image_digest else spec.image,
        "model_name": job.model_name,
        "env": [f"{key}={value}" for key, value in spec.env.items()],
    }
    resources = spec.resources
    # Every value explicitly, so a flavor redefined since changes nothing; its name is
    # kept for the record (and it must still exist).
    for key in ("cpus", "nodes", "tasks_per_node", "mem", "shm", "time", "partition",
                "account", "qos", "constraint", "exclusive", "flavor", "restarts",
                "restart_on_failure", "save_seconds"):
        if resources.get(key) not in (None, ""):
            options[key] = resources[key]
    if resources.get("gpus") is not None:
        gpu_type = resources.get("gpu_type") or ""
        options["gpus"] = f"{gpu_type}:{resources['gpus']}" if gpu_type else \
            str(resources["gpus"])
    for key in ("sbatch_template", "launcher"):
        if spec.extra.get(key):
            options[key] = spec.extra[key]
    from gateway.jobs.kinds import kind_of

    options, command = kind_of(job).recipe(job, options, spec.command)
    return {k: v for k, v in options.items() if v not in (None, [], "", False)}, command
