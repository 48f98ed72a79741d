"""The options that describe a job, shared by `gw job submit`, `gw recipe save/run` and
`gw job rerun`, and how they become a :class:`JobRequest`.

A job's *recipe* is these options as typed (strings, lists) plus its command: a template
stores one, a run lays overrides over it, and the request is built from the result by the
one function below, so a template run renders the same script as the submit it came from.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from gateway.context import Gateway
    from gateway.jobs.request import JobRequest

# (option, parameter name, multiple, type, help); the order is the order --help shows.
RECIPE_OPTIONS: tuple[tuple[str, str, bool, Any, str], ...] = (
    ("--algo", "algo", False, str, "Algorithm NAME or NAME@vN (default: latest)."),
    ("--image", "image", False, str, "Image NAME:TAG."),
    ("--data", "data", False, str, "Dataset NAME or NAME@vN, mounted read-only at /dataset."),
    ("--name", "name", False, str, "Job name (default: ALGO-DATE-TIME)."),
    ("--flavor", "flavor", False, str,
     "A resource shape the site defines (`gw flavors`); options given override it."),
    ("--cpus --cpus-per-task", "cpus", False, int,
     "CPUs of each task (default from config)."),
    ("--gpus --gpus-per-node", "gpus", False, str,
     "GPUs of each node, N or TYPE:N (a100:2): --gres=gpu:[TYPE:]N and GPU passthrough."),
    ("--nodes", "nodes", False, int,
     "Nodes of a distributed job: one container per task on each, with MASTER_ADDR, RANK, "
     "WORLD_SIZE, ... set (docs/distributed.md). Default 1."),
    ("--tasks-per-node", "tasks_per_node", False, int,
     "Tasks (ranks) on each node (default: 1 on one node; on several, the GPUs per "
     "node, else 1)."),
    ("--launcher", "launcher", False, click.Choice(["srun", "torchrun"]),
     "How a distributed job's ranks start: srun, one task per rank (default), or "
     "torchrun, one task per node that runs your `torchrun ...` with the rendezvous set."),
    ("--mem", "mem", False, str, "Memory, e.g. 16G (shm is added on top)."),
    ("--shm", "shm", False, str, "Size of the private /dev/shm, e.g. 8G."),
    ("--time", "time", False, str, "Time limit, D-HH:MM:SS."),
    ("--partition", "partition", False, str, "Slurm partition."),
    ("--account", "account", False, str, "Slurm account to charge."),
    ("--qos", "qos", False, str, "Slurm quality of service."),
    ("--constraint", "constraint", False, str,
     "Node features, Slurm's syntax (a100&ib); checked against the partition's nodes."),
    ("--exclusive/--no-exclusive", "exclusive", False, bool,
     "The whole node for this job (or not, over a flavor that says so)."),
    ("--restarts", "restarts", False, int,
     "Run the job again, up to N times, when it reaches its time limit, is preempted or "
     "loses its node; /model is kept between attempts as its checkpoint "
     "(docs/resume.md). Default 0."),
    ("--restart-on-failure/--no-restart-on-failure", "restart_on_failure", False, bool,
     "With --restarts: also run it again when the command fails on its own."),
    ("--save-seconds", "save_seconds", False, int,
     "With --restarts: SIGUSR1 reaches the command this long before the time limit "
     "(default: the site's resume_save_seconds, at most half the limit)."),
    ("--env", "env", True, str,
     "NAME=VALUE in the container, or NAME to pass your own $NAME without typing it "
     "(repeatable). Values are secrets: kept in a 0600 file, never on a command line, "
     "shown by name only."),
    ("--model-name", "model_name", False, str,
     "Model the job's /model becomes a version of (default: the algorithm's)."),
    ("--notebook", "notebook", False, str,
     "Run this notebook of the algorithm (e.g. main.ipynb) top to bottom instead of a "
     "COMMAND (the image needs JupyterLab; papermill is used where it has it); the "
     "executed copy is kept."),
    ("--param", "param", True, str,
     "KEY=VALUE for the notebook's `parameters` cell (repeatable)."),
    ("--sbatch-template --template", "sbatch_template", False, str,
     "Render the job's script with this sbatch template of the site's or yours (`gw "
     "sbatch-template list`; `gw sbatch-template import FILE.j2 --name NAME`)."),
)
RECIPE_KEYS = tuple(key for _opt, key, _multiple, _type, _help in RECIPE_OPTIONS)


def _completers() -> dict[str, Any]:
    from gateway.commands.completion import (
        complete_flavors,
        complete_images,
        store_completer,
    )

    return {"algo": store_completer("algo"), "data": store_completer("data"),
            "image": complete_images, "flavor": complete_flavors,
            "model_name": store_completer("model")}


def recipe_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add every recipe option to a click command (none required: the caller checks)."""
    completers = _completers()
    for option, key, multiple, kind, help_text in reversed(RECIPE_OPTIONS):
        names = option.split()   # the name, then older names that keep working
        if kind is bool:
            func = click.option(*names, key, default=None, help=help_text)(func)
        else:
            func = click.option(*names, key, multiple=multiple, type=kind, default=None,
                                help=help_text, shell_complete=completers.get(key))(func)
    return func


def recipe_from_options(options: dict[str, Any]) -> dict[str, Any]:
    """The options a person gave (unset ones left out), as a recipe. The names in it are
    checked here, so that no command records (or saves) a name another would refuse."""
    recipe: dict[str, Any] = {}
    for key in RECIPE_KEYS:
        value = options.get(key)
        if value is None or (isinstance(value, tuple) and not value):
            continue
        recipe[key] = list(value) if isinstance(value, tuple) else value
    check_recipe_names(recipe)
    return recipe


def check_recipe_names(recipe: dict[str, Any]) -> None:
    """Every name in a recipe by the one rule for names (gateway/common/specs.py)."""
    from gateway.common.specs import check_image_name, check_job_name, check_name

    if recipe.get("name") is not None:
        check_job_name(recipe["name"])
    for key, what in (("model_name", "model"), ("flavor", "flavor"),
                      ("sbatch_template", "sbatch template")):
        if recipe.get(key):
            check_name(recipe[key], what)
    if recipe.get("image"):
        check_image_name(recipe["image"])


def build_request(gw: Gateway, recipe: dict[str, Any], command: tuple[str, ...], *,
                  origin: str = "cli", provenance: dict[str, Any] | None = None
                  ) -> JobRequest:
    """Validate a recipe and its command into a request (nothing is recorded here). The
    job records the recipe, and ``provenance`` (the template or job it came from, the
    overrides, the --set values): see JobSpec.recipe."""
    from gateway.common.errors import InvalidInput
    from gateway.common.specs import (
        check_image_name,
        parse_env,
        parse_params,
        parse_resources,
        parse_version_ref,
    )
    from gateway.jobs.request import JobRequest

    for key in ("algo", "image"):
        if not recipe.get(key):
            raise InvalidInput(f"missing --{key}: a job needs an algorithm and an image")
    notebook, params = recipe.get("notebook"), tuple(recipe.get("param") or ())
    if notebook is not None and command:
        raise InvalidInput("give either --notebook or a COMMAND after --, not both")
    if notebook is None and params:
        raise InvalidInput("--param goes with --notebook")
    flavor = None
    if recipe.get("flavor"):
        from gateway.home.flavors import get_flavor

        flavor = get_flavor(gw.config, recipe["flavor"])
    resources = parse_resources(cpus=recipe.get("cpus"), gpus=recipe.get("gpus"),
                                mem=recipe.get("mem"), shm=recipe.get("shm"),
                                time=recipe.get("time"), partition=recipe.get("partition"),
                                account=recipe.get("account"), qos=recipe.get("qos"),
                                constraint=recipe.get("constraint"),
                                exclusive=recipe.get("exclusive"), flavor=flavor,
                                nodes=recipe.get("nodes"),
                                tasks_per_node=recipe.get("tasks_per_node"),
                                one_task_per_node=recipe.get("launcher") == "torchrun",
                                restarts=recipe.get("restarts"),
                                restart_on_failure=recipe.get("restart_on_failure"),
                                save_seconds=recipe.get("save_seconds"),
                                defaults=gw.config)
    algo_ref = parse_version_ref(recipe["algo"], "algorithm")
    data_ref = parse_version_ref(recipe["data"], "dataset") if recipe.get("data") else None
    env = parse_env(tuple(recipe.get("env") or ()))
    if notebook is not None:
        from gateway.jobs.notebooks import headless_request

        request = headless_request(gw, notebook=notebook, params=parse_params(params),
                                   image=check_image_name(recipe["image"]), algo=algo_ref,
                                   data=data_ref, name=recipe.get("name"), env=env,
                                   resources=resources, model_name=recipe.get("model_name"))
    else:
        request = JobRequest(algo=algo_ref, image=check_image_name(recipe["image"]),
                             data=data_ref, name=recipe.get("name"), command=command,
                             env=env, model_name=recipe.get("model_name"),
                             resources=resources)
    from dataclasses import replace

    from gateway.jobs.shapes import shape_for

    extra = dict(request.extra)
    shape = shape_for(resources, recipe.get("launcher"), request.shape)
    if recipe.get("launcher"):
        extra["launcher"] = recipe["launcher"]
    if recipe.get("sbatch_template"):
        if notebook is not None:
            raise InvalidInput("--sbatch-template goes with a COMMAND, not --notebook")
        from gateway.jobs.sbatch_templates import find_template

        find_template(gw, recipe["sbatch_template"])  # exists (checked when rendered)
        extra["sbatch_template"] = recipe["sbatch_template"]
    return replace(request, origin=origin if origin != "cli" else request.origin, extra=extra,
                   shape=shape,
                   recipe={"options": recipe, "command": list(command), **(provenance or {})})
