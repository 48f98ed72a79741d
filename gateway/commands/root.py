"""The root `gw` group: command groups load only when used, so `gw --help` and a command
import click and that command's module alone (`gw job list` is typed all day)."""

from __future__ import annotations

import importlib
import sys

import click

from gateway.common.errors import GatewayError

# name -> (module under gateway.commands, attribute, the line `gw --help` shows).
# tests/unit/test_cli_root.py checks each line against the command's own help.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "algo": ("stores", "algo", "Algorithms: immutable numbered versions (v1, v2, ...)."),
    "completion": ("completion", "completion_cmd",
                   "Print the completion script for SHELL (bash, zsh, fish)."),
    "config": ("admin", "config_cmd", "Print the resolved configuration and where each "
               "value came from."),
    "data": ("stores", "data", "Datasets: immutable numbered versions (v1, v2, ...)."),
    "doctor": ("admin", "doctor", "Check Slurm, the runtime, FUSE and paths; say what to "
               "fix."),
    "flavors": ("flavors", "flavors_cmd", "List the resource flavors (--flavor NAME)."),
    "image": ("images", "image", "Container images, converted to SIF once."),
    "job": ("jobs", "job", "Training jobs: submit, follow, cancel, rerun, render."),
    "model": ("models", "model", "Models: each successful job's /model, versioned."),
    "notebook": ("notebooks", "notebook", "Notebooks: JupyterLab over a draft of an "
                 "algorithm."),
    "ood": ("ood", "ood", "Open OnDemand apps for notebooks and training jobs."),
    "spool": ("admin", "spool", "The spool: job end states written on compute nodes."),
    "recipe": ("recipes", "recipe", "Saved job recipes: options and command under a name."),
    "sbatch-template": ("sbatch_templates", "sbatch_template", "Your site's or your own "
                        "script around a job."),
    "template": ("recipes", "template", "Old name of `recipe` and `sbatch-template`."),
    "web": ("web", "web_cmd", "Serve the dashboard on 127.0.0.1 (the web platform's "
            "pages)."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported when named (see :data:`COMMANDS`)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, attribute, _help = COMMANDS[cmd_name]
        loaded = importlib.import_module(f"gateway.commands.{module}")
        command: click.Command = getattr(loaded, attribute)
        _add_examples(command, cmd_name)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from :data:`COMMANDS`, without importing any of them."""
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name][2]) for name in sorted(COMMANDS)])


def _add_examples(command: click.Command, path: str) -> None:
    """Give ``command`` (and a group's subcommands) their examples as the help's epilog."""
    from gateway.commands.examples import epilog

    if command.epilog is None:
        command.epilog = epilog(path)
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            _add_examples(sub, f"{path} {name}")


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option("0.1.0", prog_name="gw")
def cli() -> None:
    """hpc-gateway: train models on a Slurm cluster the way a web AI platform does.

    \b
    Images:     gw image import x.tar --name detectron2:v1
    Code:       gw algo push detectron2.zip --name detectron2   (v1, v2, ...)
    Data:       gw data push MSCOCO2017.zip --name coco         (read-only versions)
    Train:      gw job submit --algo detectron2 --image detectron2:v1 --data coco
                    --gpus 1 -- python /code/detectron2/tools/train_net.py
    Results:    gw job show 1; gw job logs 1 -f; gw model versions detectron2
    Again:      gw job rerun 1; gw recipe save t --from-job 1; gw recipe run t
    Notebook:   gw notebook start --image jupyter:v1 --algo detectron2 --wait
    Share:      gw data share coco --group vision   (others: --data alice:coco@v2)

    Everything lives under GW_HOME (see `gw config`); `gw doctor` checks the set-up.
    """


def run() -> None:
    """Run the click app: one clear line on stderr and a meaningful exit status."""
    try:
        code = cli.main(standalone_mode=False, prog_name="gw")
    except click.exceptions.UsageError as exc:
        where = f"`{exc.ctx.command_path} --help`" if exc.ctx else "`gw --help`"
        click.echo(f"gw: error: {exc.format_message()} (see {where})", err=True)
        sys.exit(2)
    except click.exceptions.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("gw: aborted", err=True)
        sys.exit(1)
    except GatewayError as exc:
        click.echo(f"gw: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
