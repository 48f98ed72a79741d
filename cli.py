"""`gw`: the hpc-gateway command line.

Thin on purpose: parse, call a service in gateway/, print a table or ``--json``. The click
app (gateway/commands/root.py) loads each command group only when it is used, and `gw job
list`, typed all day, is answered without click at all (gateway/jobs/quick_list.py).
Exit status: 0 success, 2 bad usage or invalid input, 1 when Slurm or a tool failed.
"""

from __future__ import annotations

import os
import sys


def main() -> None:
    """Console entry point: one clear line on stderr and a meaningful exit status.

    Everything `gw` creates is private to its owner (0700/0600) whatever the caller's umask:
    a home holds code, data, models and job secrets. Sharing is explicit, never a default.
    """
    os.umask(0o077)
    args = sys.argv[1:]
    if "_GW_COMPLETE" not in os.environ:
        _maybe_remote(args)
    if args[:2] == ["job", "list"] and "_GW_COMPLETE" not in os.environ:
        from gateway.jobs.quick_list import run as quick_job_list

        code = quick_job_list(args[2:])
        if code is not None:
            sys.exit(code)
    from gateway.commands.root import run

    run()


def _maybe_remote(args: list[str]) -> None:
    """With ``--host HOST`` first, or ``submit_host`` configured, run the command on that
    login node over SSH (gateway/access/remote.py) and exit with its status."""
    from gateway.common.errors import GatewayError

    try:
        from gateway.home.config import load_config

        config = load_config()
        host = str(config["submit_host"] or "") or None
        if args[:1] and args[0].startswith("--host"):
            from gateway.access.remote import take_host

            host, args = take_host(args)
        if host is None:
            return
        from gateway.access.remote import run_remote, wants_remote

        if not wants_remote(args):
            sys.argv[1:] = args  # --help, --version, completion: answered here
            return
        from gateway.commands.root import cli

        code = run_remote(host, args, config, cli)
    except GatewayError as exc:
        print(f"gw: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    sys.exit(code)


def __getattr__(name: str) -> object:
    """``cli.cli``: the click app, loaded on first use."""
    if name == "cli":
        from gateway.commands.root import cli

        return cli
    raise AttributeError(name)


if __name__ == "__main__":
    main()
