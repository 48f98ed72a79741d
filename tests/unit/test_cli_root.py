"""The root of the CLI: lazily loaded groups, an example for every command, the fast
`gw job list` parser."""

from __future__ import annotations

import shlex
import subprocess
import sys

import click
import pytest

from gateway.commands.examples import EXAMPLES
from gateway.commands.root import COMMANDS, cli
from gateway.jobs.quick_list import parse


def all_commands() -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}
    ctx = click.Context(cli)
    for name in COMMANDS:
        command = cli.get_command(ctx, name)
        assert isinstance(command, click.Command), name
        stack = [(name, command)]
        while stack:
            path, cmd = stack.pop()
            if isinstance(cmd, click.Group):
                stack += [(f"{path} {sub}", c) for sub, c in cmd.commands.items()]
            else:
                found[path] = cmd
    return found


def test_every_command_has_an_example_and_every_example_parses():
    commands = all_commands()
    assert set(commands) == set(EXAMPLES)
    for path, command in commands.items():
        assert command.epilog and "Examples:" in command.epilog, path
        for example in EXAMPLES[path]:
            if not example.startswith("gw "):
                continue
            words = shlex.split(example)[1:]
            depth = len(path.split())
            assert words[:depth] == path.split(), example
            command.make_context(path, words[depth:])  # a usage error fails the test


def test_short_help_lines_fit_and_help_loads_no_command_module():
    for name, (_module, _attribute, line) in COMMANDS.items():
        assert len(name) + len(line) < 78, name
    code = ("import sys\nfrom gateway.commands.root import cli\n"
            "try:\n    cli.main(['--help'], prog_name='gw')\nexcept SystemExit:\n    pass\n"
            "loaded = [m for m in sys.modules if m.startswith('gateway.commands.')"
            " and not m.endswith('.root')]\nprint(loaded, file=sys.stderr)\n"
            "assert not loaded, loaded\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert "notebook" in proc.stdout and "Notebooks: JupyterLab" in proc.stdout


@pytest.mark.parametrize("args,parsed", [
    ([], ((), None, False)),
    (["--json"], ((), None, True)),
    (["--state", "running", "--state=FAILED", "--limit", "5"], (("RUNNING", "FAILED"), 5, False)),
    (["--limit=20", "--json"], ((), 20, True)),
])
def test_fast_job_list_parses_plain_uses(args, parsed):
    assert parse(args) == parsed


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["--state", "nope"], ["--limit", "0"],
                                  ["--limit"], ["--limit", "x"], ["extra"], ["--jsonx"]])
def test_fast_job_list_leaves_the_rest_to_click(args):
    assert parse(args) is None
