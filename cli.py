"""`gw`: the hpc-gateway command line.

Thin on purpose: parse, call a service in gateway/, print a table or ``--json``. Heavy
modules are imported inside the commands that need them so `gw --help` stays fast.
Exit status: 0 success, 2 bad usage or invalid input, 1 when Slurm or a tool failed.
"""

from __future__ import annotations

import os
import sys

import click

from hpc_gateway.gateway.errors import GatewayError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
    Again:      gw job rerun 1; gw template save t --from-job 1; gw template run t

    Everything lives under GW_HOME (see `gw config`); `gw doctor` checks the set-up.
    """


def _register_commands() -> None:
    from hpc_gateway.gateway.commands import (
        admin,
        completion,
        flavors,
        images,
        jobs,
        models,
        notebooks,
        ood,
        stores,
        templates,
    )

    for command in (images.image, stores.algo, stores.data, jobs.job, notebooks.notebook,
                    models.model, templates.template, flavors.flavors_cmd,
                    admin.spool, admin.doctor, admin.config_cmd, completion.completion_cmd,
                    ood.ood):
        cli.add_command(command)


_register_commands()


def main() -> None:
    """Console entry point: one clear line on stderr and a meaningful exit status.

    Everything `gw` creates is private to its owner (0700/0600) whatever the caller's umask:
    a home holds code, data, models and job secrets. Sharing is explicit, never a default.
    """
    os.umask(0o077)
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


if __name__ == "__main__":
    main()
