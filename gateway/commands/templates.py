"""`gw template ...`: save a job's recipe under a name, run it again, sweep it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from hpc_gateway.gateway.commands import json_option, open_gateway
from hpc_gateway.gateway.commands.completion import JOB_ID, complete_templates
from hpc_gateway.gateway.commands.submit_options import (
    build_request,
    recipe_from_options,
    recipe_options,
)


@click.group()
def template() -> None:
    """Job templates: a job's whole recipe under a name, run again or swept.

    \b
    gw template save train --algo det --image det:v1 --gpus 1 -- python train.py --lr {{ lr }}
    gw template save nightly --from-job 42
    gw template run train --set lr=0.01
    gw template run train --sweep lr=0.1,0.01 --sweep bs=32,64 --max-parallel 2
    """


@template.command("save")
@click.argument("template_name", metavar="NAME", shell_complete=complete_templates)
@recipe_options
@click.option("--from-job", "from_job", type=JOB_ID, default=None,
              help="Take the recipe of this job (options given here override it).")
@click.option("--replace", is_flag=True, help="Replace a template of the same name.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@json_option
def template_save(template_name: str, from_job: int | None, replace: bool, command: tuple[str, ...],
                  as_json: bool, **options: Any) -> None:
    """Keep a job recipe under NAME: the submit options given and the COMMAND after --.

    The COMMAND may hold {{ placeholders }} that `gw template run --set KEY=VALUE` (or
    --sweep) fills. Nothing is checked against the stores here: the recipe is checked
    when it runs, so a template may name an algorithm version still to come.
    """
    from hpc_gateway.gateway.display import print_json
    from hpc_gateway.gateway.errors import InvalidInput
    from hpc_gateway.gateway.job_templates import save_template
    from hpc_gateway.gateway.jobs import get_job
    from hpc_gateway.gateway.recipes import exact_recipe, overlay, placeholders

    gw = open_gateway()
    given = recipe_from_options(options)
    if from_job is not None:
        job = get_job(gw, from_job)
        recorded = job.spec.recipe
        if recorded.get("options"):
            base, base_command = dict(recorded["options"]), tuple(recorded.get("command", ()))
        else:
            base, base_command = exact_recipe(job)
        given, command = overlay(base, given), command or base_command
    for key in ("algo", "image"):
        if not given.get(key):
            raise InvalidInput(f"missing --{key}: a template needs an algorithm and an image")
    if not command and not given.get("notebook"):
        raise InvalidInput("no command: put it after `--`, or give --notebook")
    saved = save_template(gw, template_name, given, command, from_job, replace)
    if as_json:
        print_json(saved.as_dict())
        return
    names = placeholders(saved.command)
    click.echo(f"saved template {template_name}" + (f" (placeholders: {', '.join(names)})"
                                           if names else ""))


@template.command("list")
@json_option
def template_list(as_json: bool) -> None:
    """List templates."""
    from hpc_gateway.gateway.display import print_json, print_table
    from hpc_gateway.gateway.job_templates import list_templates

    templates = [t.as_dict() for t in list_templates(open_gateway())]
    if as_json:
        print_json(templates)
        return
    print_table([(t["name"], t["options"].get("algo"), t["options"].get("image"),
                  " ".join(t["command"]) or f"--notebook {t['options'].get('notebook')}",
                  ", ".join(t["placeholders"]) or None) for t in templates],
                ["NAME", "ALGO", "IMAGE", "COMMAND", "PLACEHOLDERS"])


@template.command("show")
@click.argument("name")
@json_option
def template_show(name: str, as_json: bool) -> None:
    """Show a template's options, command and placeholders."""
    from hpc_gateway.gateway.display import human_time, print_fields, print_json
    from hpc_gateway.gateway.job_templates import get_template

    shown = get_template(open_gateway(), name).as_dict()
    if as_json:
        print_json(shown)
        return
    print_fields([("template", shown["name"]),
                  *[(f"--{k.replace('_', '-')}", " ".join(map(str, v)) if isinstance(v, list)
                     else v) for k, v in shown["options"].items()],
                  ("command", " ".join(shown["command"]) or None),
                  ("placeholders", ", ".join(shown["placeholders"]) or None),
                  ("from job", shown["source_job_id"]),
                  ("saved", human_time(shown["created"]))])


@template.command("rm")
@click.argument("name")
def template_rm(name: str) -> None:
    """Remove a template (jobs run from it keep their recipe)."""
    from hpc_gateway.gateway.job_templates import remove_template

    remove_template(open_gateway(), name)
    click.echo(f"removed template {name}")


@template.command("run")
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
def template_run(template_name: str, sets: tuple[str, ...], sweeps: tuple[str, ...],
                 max_parallel: int | None, wait: bool, for_portal: bool,
                 command: tuple[str, ...], as_json: bool, **options: Any) -> None:
    """Submit a job from template NAME; options given here override the template's, and
    a COMMAND after -- replaces its command. The job records the template and what was
    overridden (`gw job show`)."""
    from hpc_gateway.gateway.commands.jobs import finish_submission
    from hpc_gateway.gateway.errors import InvalidInput
    from hpc_gateway.gateway.job_templates import get_template
    from hpc_gateway.gateway.recipes import (
        check_values_used,
        fill,
        overlay,
        parse_sets,
        parse_sweeps,
    )
    from hpc_gateway.gateway.submit import submit_job

    gw = open_gateway()
    saved = get_template(gw, template_name)
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
            from hpc_gateway.gateway.commands.jobs import print_portal_submission

            print_portal_submission(gw, request, wait)
            return
        finish_submission(gw, submit_job(gw, request), wait, as_json)
        return
    if for_portal:
        raise InvalidInput("--for-portal runs one job, not a --sweep")
    from hpc_gateway.gateway.sweeps import submit_sweep

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


@template.command("import")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--name", "script_name", required=True,
              help="Name to use with --template NAME.")
@click.option("--replace", is_flag=True, help="Replace your template of the same name.")
def template_import(source: Path, script_name: str, replace: bool) -> None:
    """Check an sbatch template (Jinja, extending sbatch/training.sh.j2) and keep it as
    yours under NAME; jobs use it with --template NAME.

    \b
    {% extends "sbatch/training.sh.j2" %}
    {% block header %}#SBATCH --constraint=a100{% endblock %}
    {% block prologue %}
    module load cuda/12.2
    {{ super() }}
    {% endblock %}

    Only the blocks header, prologue, command and epilogue may be filled; a template that
    does not extend the gateway's, sets a trap, uses exec, or does not run the container
    once is refused (the base template's trap records how every job ended).
    """
    from hpc_gateway.gateway.sbatch_templates import import_template

    target = import_template(open_gateway(), source, script_name, replace)
    click.echo(f"imported sbatch template {script_name} ({target})")


@template.command("scripts")
@json_option
def template_scripts(as_json: bool) -> None:
    """List the sbatch templates --template can name (the site's and yours)."""
    from hpc_gateway.gateway.display import print_json, print_table
    from hpc_gateway.gateway.sbatch_templates import list_templates

    found = list_templates(open_gateway())
    if as_json:
        print_json(found)
        return
    print_table([(t["name"], t["source"], t["path"]) for t in found],
                ["NAME", "SOURCE", "PATH"])


@template.command("rm-script")
@click.argument("script_name", metavar="NAME")
def template_rm_script(script_name: str) -> None:
    """Remove one of your sbatch templates."""
    from hpc_gateway.gateway.sbatch_templates import remove_template

    remove_template(open_gateway(), script_name)
    click.echo(f"removed sbatch template {script_name}")
