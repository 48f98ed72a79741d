"""Running external programs: the one function every shell-out goes through."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence

from hpc_gateway.gateway.errors import CommandFailed


def run_command(argv: Sequence[str], *, input_text: str | None = None,
                env: Mapping[str, str] | None = None, timeout: float | None = None,
                cwd: str | os.PathLike[str] | None = None,
                error_type: type[CommandFailed] = CommandFailed,
                what: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (never through a shell) and return the completed process.

    With ``check`` (the default) a non-zero exit, a timeout or a missing program raises
    ``error_type`` carrying the command line, exit status and stderr.
    """
    full_env = None
    if env is not None:
        full_env = dict(os.environ)
        full_env.update(env)
    try:
        proc = subprocess.run(list(argv), input=input_text, capture_output=True, text=True,
                              env=full_env, timeout=timeout, cwd=cwd, check=False)
    except FileNotFoundError as exc:
        raise error_type(argv, 127, f"{argv[0]}: command not found ({exc})", what) from exc
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        raise error_type(argv, None, stderr or f"no answer within {timeout} s", what) from exc
    if check and proc.returncode != 0:
        raise error_type(argv, proc.returncode, proc.stderr, what)
    return proc
