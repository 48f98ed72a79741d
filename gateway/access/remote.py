"""`gw --host HOST ...`: gw on a workstation, the work on a login node, over SSH (fabric).

The command runs as ``remote_gw`` on the submit host, with its output streamed back and
its exit status returned, so every scheduler command runs where Slurm is. What is local
travels over SFTP with progress: a pushed directory or zip, an imported tarball, a template
file go up to a private temporary directory there first (a directory as one tar stream);
a download (`model download`, `job outputs`, `job render -o`) is written there and fetched.
`notebook start` waits for JupyterLab and opens the tunnel to it through the same
connection, until Ctrl-C.

Host keys are checked against ~/.ssh/known_hosts and ``ssh_known_hosts``: an unknown host
is refused (fabric alone would accept any). An unreachable host, a refused key or an
unknown host key is one line and exit 1.
"""

from __future__ import annotations

import json
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from gateway.common.atomic import check_output_path
from gateway.common.errors import InvalidInput, RemoteError
from gateway.common.quoting import shell_line, shell_word

if TYPE_CHECKING:
    from fabric import Connection

    from gateway.home.config import Config

# Commands whose path parameter is local: (parameter name, "up" or "down").
TRANSFERS: dict[str, tuple[str, str]] = {
    "image import": ("tarball", "up"),
    "algo push": ("path", "up"),
    "data push": ("path", "up"),
    "template import": ("source", "up"),
    "model download": ("output", "down"),
    "job outputs": ("output", "down"),
    "job render": ("output", "down"),
}
# Commands that run here even with a submit host: they make nothing on the cluster.
LOCAL_COMMANDS = ("completion",)
CONNECT_TIMEOUT = 15


@dataclass(frozen=True)
class Target:
    """Where a remote command's local path goes, and its place on the submit host."""

    index: int          # the argument that holds the path
    prefix: str         # "--output=" when the path was given in that form
    local: Path
    direction: str      # "up" or "down"


def take_host(args: list[str]) -> tuple[str | None, list[str]]:
    """``--host HOST`` / ``--host=HOST`` before the command: (host, the other arguments)."""
    if args and args[0] == "--host":
        if len(args) < 2:
            raise InvalidInput("--host needs a HOST (user@host:port or an ssh alias)")
        return args[1], args[2:]
    if args and args[0].startswith("--host="):
        return args[0].split("=", 1)[1], args[1:]
    return None, args


def wants_remote(args: list[str]) -> bool:
    """Whether these arguments run on the submit host (help and completion stay here)."""
    if not args or any(a in ("-h", "--help", "--version") for a in _before_dashdash(args)):
        return False
    return args[0] not in LOCAL_COMMANDS


def _before_dashdash(args: list[str]) -> list[str]:
    return args[:args.index("--")] if "--" in args else args


def connect(host: str, config: Config) -> Connection:
    """An open SSH connection to ``host`` that refuses unknown host keys."""
    from fabric import Connection
    from paramiko import RejectPolicy

    kwargs: dict[str, Any] = {}
    if config["ssh_identity"]:
        kwargs["key_filename"] = str(config["ssh_identity"])
    conn = Connection(host, connect_timeout=CONNECT_TIMEOUT, connect_kwargs=kwargs)
    conn.client.set_missing_host_key_policy(RejectPolicy())
    try:
        conn.client.load_system_host_keys()
        if config["ssh_known_hosts"]:
            conn.client.load_host_keys(str(config["ssh_known_hosts"]))
        conn.open()
    except Exception as exc:
        raise RemoteError(f"cannot reach {host} over SSH: {_reason(exc)}") from exc
    return conn


def _reason(exc: BaseException) -> str:
    from paramiko import AuthenticationException, SSHException

    if isinstance(exc, AuthenticationException):
        return f"the key was refused ({exc})"
    if isinstance(exc, SSHException) and "not found in known_hosts" in str(exc):
        return (f"its host key is unknown ({exc}); add it to ~/.ssh/known_hosts "
                "(ssh-keyscan, after checking it) or to ssh_known_hosts")
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0] if text else type(exc).__name__


def run_remote(host: str, args: list[str], config: Config, commands: click.Group) -> int:
    """Run ``gw ARGS`` on ``host``; returns its exit status. ``commands`` is gw's own
    command group, which tells which argument names a local file to carry there or back."""
    command = _command_path(args, commands)
    target = _find_target(command, args, commands)
    if target is not None and target.direction == "down":
        check_output_path(target.local)
    if target is not None and target.direction == "up" and not target.local.exists():
        raise InvalidInput(f"{target.local}: no such file or directory")
    conn = connect(host, config)
    remote_gw = str(config["remote_gw"])
    try:
        if command == "notebook start" and "--for-portal" not in args:
            return _notebook_with_tunnel(conn, remote_gw, args)
        if target is None:
            return int(_run(conn, [remote_gw, *args]))
        scratch = _remote_scratch(conn)
        try:
            remote_path = f"{scratch}/{target.local.name or 'upload'}"
            if target.direction == "up":
                remote_path = _upload(conn, target.local, scratch)
            argv = list(args)
            argv[target.index] = target.prefix + remote_path
            code = _run(conn, [remote_gw, *argv])
            if code == 0 and target.direction == "down":
                _download(conn, remote_path, target.local)
            return int(code)
        finally:
            conn.run(f"rm -rf {shell_word(scratch)}", hide=True, warn=True, in_stream=False)
    finally:
        conn.close()


def _command_path(args: list[str], commands: click.Group) -> str:
    """"job submit", "doctor", ... from the arguments."""
    if not args or args[0] not in commands.list_commands(click.Context(commands)):
        return args[0] if args else ""
    if len(args) > 1 and not args[1].startswith("-"):
        return f"{args[0]} {args[1]}"
    return args[0]


def _find_target(command: str, args: list[str], commands: click.Group) -> Target | None:
    """The local path ``args`` give the command, if it takes one."""
    if command not in TRANSFERS:
        return None
    name, direction = TRANSFERS[command]
    words = command.split()
    click_command = commands.get_command(click.Context(commands), words[0])
    assert isinstance(click_command, click.Group)
    sub = click_command.commands[words[1]]
    rest = args[len(words):]
    ctx = sub.make_context(command, list(rest), resilient_parsing=True)
    value = ctx.params.get(name)
    if value is None:
        return None
    text = str(value)
    option = next((p for p in sub.params if p.name == name), None)
    long_names = [o for o in getattr(option, "opts", []) if o.startswith("--")]
    cut = rest.index("--") if "--" in rest else len(rest)
    for index, word in enumerate(rest[:cut]):
        for long_name in long_names:
            if word == f"{long_name}={text}":
                return Target(len(words) + index, f"{long_name}=", Path(text), direction)
        if word == text:
            return Target(len(words) + index, "", Path(text), direction)
    return None


def _run(conn: Connection, argv: list[str], *, capture: bool = False) -> Any:
    """Run ``argv`` there, output streamed here (or captured); the result or exit status."""
    result = conn.run(shell_line(argv), hide=capture, warn=True, in_stream=False, pty=False)
    if result.exited == 127 and "command not found" in (result.stderr or "") + "\n":
        raise RemoteError(f"{conn.host} has no `{argv[0]}` (remote_gw): install gw there, or "
                          "set remote_gw to its path")
    if result.exited == 127 and not capture:
        raise RemoteError(f"{conn.host} could not run `{argv[0]}` (remote_gw): install gw "
                          "there, or set remote_gw to its path")
    return result if capture else result.exited


def _remote_scratch(conn: Connection) -> str:
    """A private (0700) temporary directory on the submit host."""
    result = conn.run("umask 077 && mktemp -d -t gw-transfer.XXXXXXXX", hide=True, warn=True,
                      in_stream=False)
    if result.exited != 0:
        raise RemoteError(f"cannot make a temporary directory on {conn.host}: "
                          f"{result.stderr.strip()}")
    return str(result.stdout.strip())


def _upload(conn: Connection, local: Path, scratch: str) -> str:
    """Send a file, or a directory as one tar stream unpacked there; returns its path."""
    from gateway.common.progress import StepProgress

    sftp = conn.sftp()
    with StepProgress(f"upload {local.name}") as progress:
        if local.is_dir():
            with tempfile.TemporaryDirectory(prefix="gw-upload.") as tmp:
                packed = Path(tmp) / "upload.tar"
                with tarfile.open(packed, "w") as tar:
                    tar.add(local, arcname=local.name or "upload")
                size = packed.stat().st_size
                sftp.put(str(packed), f"{scratch}/upload.tar",
                         callback=lambda done, _total: progress("send", done, size))
            unpacked = f"{scratch}/unpacked"
            code = conn.run(f"mkdir {shell_word(unpacked)} && tar -xf "
                            f"{shell_word(scratch + '/upload.tar')} -C {shell_word(unpacked)}"
                            f" && rm {shell_word(scratch + '/upload.tar')}", hide=True,
                            warn=True, in_stream=False)
            if code.exited != 0:
                raise RemoteError(f"unpacking the upload on {conn.host} failed: "
                                  f"{code.stderr.strip()}")
            return f"{unpacked}/{local.name or 'upload'}"
        size = local.stat().st_size
        remote = f"{scratch}/{local.name}"
        sftp.put(str(local), remote, callback=lambda done, _total: progress("send", done, size))
        return remote


def _download(conn: Connection, remote: str, local: Path) -> None:
    """Fetch ``remote`` to ``local`` (atomically: a partial file never has its name)."""
    from gateway.common.atomic import replacing
    from gateway.common.progress import StepProgress

    sftp = conn.sftp()
    size = sftp.stat(remote).st_size or 0
    with replacing(local) as partial, StepProgress(f"download {local.name}") as progress:
        sftp.get(remote, str(partial),
                 callback=lambda done, _total: progress("receive", done, size))


def _notebook_with_tunnel(conn: Connection, remote_gw: str, args: list[str]) -> int:
    """Start the notebook there, wait for it, and tunnel a local port to it until Ctrl-C."""
    import socket

    as_json = "--json" in args
    argv = [a for a in args if a != "--json"]
    if "--wait" not in argv:
        argv.append("--wait")
    result = _run(conn, [remote_gw, *argv, "--json"], capture=True)
    if result.exited != 0:
        sys.stderr.write(result.stderr)
        return int(result.exited)
    info = json.loads(result.stdout)
    with socket.socket() as probe:  # a free local port for the tunnel
        probe.bind(("127.0.0.1", 0))
        local_port = probe.getsockname()[1]
    base_url = info["url"].split("/lab?token=")[0].split(f":{info['port']}", 1)[1]
    info["local_url"] = f"http://localhost:{local_port}{base_url}/lab?token={info['token']}"
    info["tunnel"] = f"open by gw on localhost:{local_port} until Ctrl-C"
    remote_host = info["url"].split("://", 1)[1].split(":", 1)[0]
    try:
        with conn.forward_local(local_port, remote_port=int(info["port"]),
                                remote_host=remote_host, local_host="127.0.0.1"):
            # fabric binds the local port in its tunnel thread: the URL is printed only once
            # that port accepts connections, so whoever reads it can open it at once
            _wait_for_listener(local_port)
            _print_notebook_tunnel(info, conn.host, as_json)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        print("tunnel closed", file=sys.stderr)
    return 0


def _wait_for_listener(port: int, timeout: float = 30.0) -> None:
    """Return once 127.0.0.1:``port`` accepts a connection; RemoteError after ``timeout``."""
    import socket

    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError as err:
            if time.monotonic() > deadline:
                raise RemoteError(f"the tunnel on localhost:{port} did not open: {err}") from err
            time.sleep(0.05)


def _print_notebook_tunnel(info: dict[str, Any], host: str, as_json: bool) -> None:
    """Tell the user where the tunnelled notebook is (JSON or one human paragraph)."""
    if as_json:
        print(json.dumps(info, indent=2, sort_keys=True), flush=True)
    else:
        print(f"notebook {info['id']} is running on {info['node']}\n"
              f"open:  {info['local_url']}\n"
              f"(tunnelled through {host}; Ctrl-C closes the tunnel, the notebook keeps "
              f"running: gw --host {host} notebook stop {info['id']})", flush=True)
