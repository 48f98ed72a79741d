"""`gw recipe ...` (old name `gw template ...`): save a job's recipe under a name, run it again,
sweep it."""

from __future__ import annotations

from typing import Any

import click

from gateway.commands import json_option, open_gateway
from gateway.commands.completion import JOB_ID, complete_templates
from gateway.commands.submit_options import (
    build_request,
    recipe_from_options,
    recipe_options,
)


@click.group()
def recipe() -> None:
    """Saved job recipes: a job's options and command under a name, run again or swept.

    \b
    gw recipe save train --algo det --image det:v1 --gpus 1 -- python train.py --lr {{ lr }}
    gw recipe save nightly --from-job 42
    gw recipe run train --set lr=0.01
    gw recipe run train --sweep lr=0.1,0.01 --sweep bs=32,64 --max-parallel 2
    """


@recipe.command("save")
@click.argument("template_name", metavar="NAME", shell_complete=complete_templates)
@recipe_options
@click.option("--from-job", "from_job", type=JOB_ID, default=None,
              help="Take the recipe of this job (options given here override it).")
@click.option("--replace", is_flag=True, help="Replace a recipe of the same name.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@json_option
def recipe_save(template_name: str, from_job: int | None, replace: bool, command: tuple[str, ...],
                  as_json: bool, **options: Any) -> None:
    """Keep a job recipe under NAME: the submit options given and the COMMAND after --.

    The COMMAND may hold {{ placeholders }} that `gw recipe run --set KEY=VALUE` (or
    --sweep) fills. Nothing is checked against the stores here: the recipe is checked
    when it runs, so a recipe may name an algorithm version still to come.
    """
    from gateway.common.display import print_json
    from gateway.common.errors import InvalidInput
    from gateway.jobs.actions import get_job
    from gateway.jobs.recipes import exact_recipe, normalize_options, overlay, placeholders
    from gateway.jobs.saved_recipes import save_recipe

    gw = open_gateway()
    given = recipe_from_options(options)
    if from_job is not None:
        job = get_job(gw, from_job)
        recorded = job.spec.recipe
        if recorded.get("options"):
            base = normalize_options(dict(recorded["options"]))
            base_command = tuple(recorded.get("command", ()))
        else:
            base, base_command = exact_recipe(job)
        given, command = overlay(base, given), command or base_command
    for key in ("algo", "image"):
        if not given.get(key):
            raise InvalidInput(f"missing --{key}: a recipe needs an algorithm and an image")
    if not command and not given.get("notebook"):
        raise InvalidInput("no command: put it after `--`, or give --notebook")
    saved = save_recipe(gw, template_name, given, command, from_job, replace)
    if as_json:
        print_json(saved.as_dict())
        return
    names = placeholders(saved.command)
    click.echo(f"saved recipe {template_name}" + (f" (placeholders: {', '.join(names)})"
                                           if names else ""))


@recipe.command("list")
@json_option
def recipe_list(as_json: bool) -> None:
    """List saved recipes."""
    from gateway.common.display import print_json, print_table
    from gateway.jobs.saved_recipes import list_recipes

    templates = [t.as_dict() for t in list_recipes(open_gateway())]
    if as_json:
        print_json(templates)
        return
    print_table([(t["name"], t["options"].get("algo"), t["options"].get("image"),
                  " ".join(t["command"]) or f"--notebook {t['options'].get('notebook')}",
                  ", ".join(t["placeholders"]) or None) for t in templates],
                ["NAME", "ALGO", "IMAGE", "COMMAND", "PLACEHOLDERS"])


@recipe.command("show")
@click.argument("name")
@json_option
def recipe_show(name: str, as_json: bool) -> None:
    """Show a saved recipe's options, command and placeholders."""
    from gateway.common.display import human_time, print_fields, print_json
    from gateway.jobs.saved_recipes import get_recipe

    shown = get_recipe(open_gateway(), name).as_dict()
    if as_json:
        print_json(shown)
        return
    print_fields([("recipe", shown["name"]),
                  *[(f"--{k.replace('_', '-')}", " ".join(map(str, v)) if isinstance(v, list)
                     else v) for k, v in shown["options"].items()],
                  ("command", " ".join(shown["command"]) or None),
                  ("placeholders", ", ".join(shown["placeholders"]) or None),
                  ("from job", shown["source_job_id"]),
                  ("saved", human_time(shown["created"]))])


@recipe.command("rm")
@click.argument("name")
def recipe_rm(name: str) -> None:
    """Remove a saved recipe (the jobs run from it keep theirs)."""
    from gateway.jobs.saved_recipes import remove_recipe

    remove_recipe(open_gateway(), name)
    click.echo(f"removed recipe {name}")


@recipe.command("run")
@click.argument("template_name", metavar="NAME", shell_complete=complete_templates)
@recipe_options
@click.option("--set", "sets", multiple=True,
              help="KEY=VALUE for the command's {{ KEY }} (repeatable); taken literally.")
@click.option("--sweep", "sweeps", multiple=True,
              help="KEY=V1,V2,... : one job array, a task per combination of all --sweep "
                   "values (repeatable); each task's /model becomes its own model version.")
@click.option("--max-parallel", type=click.IntRange(min=1), default=None,
              help="With --sweep: at most N tasks run at once (Slurm's --array=...%N).")
@click.option("--wait", is_flag=True, help="Wait for the job to end; exit 1 unless it "
                                           "completed.")
@click.option("--for-portal", is_flag=True,
              help="Record and lay out the job but do not submit it: print (JSON) the sbatch "
                   "options and script a portal's own job uses (`gw ood install`).")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@json_option
def recipe_run(template_name: str, sets: tuple[str, ...], sweeps: tuple[str, ...],
                 max_parallel: int | None, wait: bool, for_portal: bool,
                 command: tuple[str, ...], as_json: bool, **options: Any) -> None:
    """Submit a job from template NAME; options given here override the template's, and
    a COMMAND after -- replaces its command. The job records the template and what was
    overridden (`gw job show`)."""
    from gateway.commands.jobs import finish_submission
    from gateway.common.errors import InvalidInput
    from gateway.jobs.recipes import (
        check_values_used,
        fill,
        overlay,
        parse_sets,
        parse_sweeps,
    )
    from gateway.jobs.saved_recipes import get_recipe
    from gateway.jobs.submit import submit_job

    gw = open_gateway()
    saved = get_recipe(gw, template_name)
    overrides = recipe_from_options(options)
    recipe = overlay(saved.options, overrides)
    template_command = command or saved.command
    values = parse_sets(sets)
    check_values_used(template_command, list(values), "--set")
    provenance = {"template": template_name, "overrides": overrides, "set": values}
    if command:
        provenance["overrides"] = {**overrides, "command": list(command)}
    if not sweeps:
        if max_parallel is not None:
            raise InvalidInput("--max-parallel goes with --sweep")
        request = build_request(gw, recipe, fill(template_command, values),
                                origin="template", provenance=provenance)
        if for_portal:
            from gateway.commands.jobs import print_portal_submission

            print_portal_submission(gw, request, wait)
            return
        finish_submission(gw, submit_job(gw, request), wait, as_json)
        return
    if for_portal:
        raise InvalidInput("--for-portal runs one job, not a --sweep")
    from gateway.jobs.sweeps import submit_sweep

    tasks = parse_sweeps(sweeps)
    clash = sorted(set(values) & set(tasks[0]))
    if clash:
        raise InvalidInput(f"{clash[0]} is given by both --set and --sweep")
    check_values_used(template_command, list(tasks[0]), "--sweep")
    commands = [fill(template_command, {**values, **task}) for task in tasks]
    request = build_request(gw, recipe, commands[0], origin="template",
                            provenance={**provenance, "sweep": list(sweeps)})
    finish_submission(gw, submit_sweep(gw, request, tasks, commands, max_parallel), wait,
                      as_json)




@click.group()
def template() -> None:
    """The old name of `gw recipe` (save, list, show, rm, run) and of `gw sbatch-template`
    (import, scripts: list, rm-script: rm); it keeps working."""


for _name, _command in recipe.commands.items():
    template.add_command(_command, _name)


def _add_old_sbatch_template_names() -> None:
    from gateway.commands.sbatch_templates import sbatch_template

    for new, old in (("import", "import"), ("list", "scripts"), ("rm", "rm-script")):
        template.add_command(sbatch_template.commands[new], old)


_add_old_sbatch_template_names()
