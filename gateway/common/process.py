"""Running external programs: the one function every shell-out goes through."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence

from gateway.common.errors import CommandFailed


def run_command(argv: Sequence[str], *, input_text: str | None = None,
                env: Mapping[str, str] | None = None, timeout: float | None = None,
                cwd: str | os.PathLike[str] | None = None,
                error_type: type[CommandFailed] = CommandFailed,
                what: str | None = None, check: bool = True,
                slow_notice: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (never through a shell) and return the completed process.

    With ``check`` (the default) a non-zero exit, a timeout or a missing program raises
    ``error_type`` carrying the command line, exit status and stderr. ``slow_notice`` is
    printed on stderr when the command has not answered within a second, so that a person
    is never left waiting in silence.
    """
    full_env = None
    if env is not None:
        full_env = dict(os.environ)
        full_env.update(env)
    try:
        with subprocess.Popen(list(argv), stdin=subprocess.PIPE if input_text else None,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=full_env, cwd=cwd) as proc:
            try:
                stdout, stderr = _communicate(proc, input_text, timeout, slow_notice)
            except subprocess.TimeoutExpired as exc:
                proc.kill()
                _out, late_err = proc.communicate()
                raise error_type(argv, None, late_err or f"no answer within {timeout:.0f} s",
                                 what) from exc
    except FileNotFoundError as exc:
        raise error_type(argv, 127, f"{argv[0]}: command not found ({exc})", what) from exc
    finished = subprocess.CompletedProcess(list(argv), proc.returncode, stdout, stderr)
    if check and finished.returncode != 0:
        raise error_type(argv, finished.returncode, finished.stderr, what)
    return finished


def _communicate(proc: subprocess.Popen[str], input_text: str | None, timeout: float | None,
                 slow_notice: str | None) -> tuple[str, str]:
    """``proc.communicate`` that prints ``slow_notice`` after a second without an answer."""
    if slow_notice is None or (timeout is not None and timeout <= 1):
        return proc.communicate(input_text, timeout=timeout)
    try:
        return proc.communicate(input_text, timeout=1)
    except subprocess.TimeoutExpired:
        print(f"gw: {slow_notice}", file=sys.stderr, flush=True)
    return proc.communicate(timeout=None if timeout is None else timeout - 1)
