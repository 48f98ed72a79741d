"""`gw sbatch-template`: the sbatch templates a job's script can be rendered with (a site's
or your own Jinja file extending the gateway's), not to be mixed up with saved job recipes
(`gw recipe`)."""

from __future__ import annotations

from pathlib import Path

import click

from gateway.commands import json_option, open_gateway


@click.group("sbatch-template")
def sbatch_template() -> None:
    """sbatch templates: your site's or your own script around the job's container.

    \b
    gw sbatch-template import mysite.sh.j2 --name mysite
    gw job submit --sbatch-template mysite --algo det --image det:v1 -- python train.py
    """


@sbatch_template.command("import")
@click.argument("source", type=click.Path(path_type=Path))
@click.option("--name", "script_name", required=True,
              help="Name to use with --sbatch-template NAME.")
@click.option("--replace", is_flag=True, help="Replace your template of the same name.")
def sbatch_template_import(source: Path, script_name: str, replace: bool) -> None:
    """Check an sbatch template (Jinja, extending sbatch/training.sh.j2) and keep it as
    yours under NAME; jobs use it with --sbatch-template NAME.

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
    from gateway.jobs.sbatch_templates import import_template

    target = import_template(open_gateway(), source, script_name, replace)
    click.echo(f"imported sbatch template {script_name} ({target})")


@sbatch_template.command("list")
@json_option
def sbatch_template_list(as_json: bool) -> None:
    """List the sbatch templates --sbatch-template can name (the site's and yours)."""
    from gateway.common.display import print_json, print_table
    from gateway.jobs.sbatch_templates import list_templates

    found = list_templates(open_gateway())
    if as_json:
        print_json(found)
        return
    print_table([(t["name"], t["source"], t["path"]) for t in found],
                ["NAME", "SOURCE", "PATH"])


@sbatch_template.command("rm")
@click.argument("script_name", metavar="NAME")
def sbatch_template_rm(script_name: str) -> None:
    """Remove one of your sbatch templates."""
    from gateway.jobs.sbatch_templates import remove_template

    remove_template(open_gateway(), script_name)
    click.echo(f"removed sbatch template {script_name}")
