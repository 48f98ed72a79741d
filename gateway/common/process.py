"""Running external programs: the one function every shell-out goes through."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import IO

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


def start_helper(argv: Sequence[str], *, pass_fds: Sequence[int] = (),
                 env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
    """Start ``argv`` (never through a shell) as a helper the caller talks to line by
    line: text pipes on its stdin and stdout, its stderr kept for the caller's error,
    ``pass_fds`` inherited, ``env`` added to the environment. The caller ends it
    (``communicate``, or ``kill``)."""
    try:
        return subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, pass_fds=tuple(pass_fds),
                                env={**os.environ, **env} if env is not None else None)
    except FileNotFoundError as exc:
        raise CommandFailed(argv, 127, f"{argv[0]}: command not found ({exc})") from exc


F_SETPIPE_SZ = 1031   # fcntl: a pipe's capacity (Linux)
PIPE_BYTES = 1 << 20  # /proc/sys/fs/pipe-max-size by default


def _widen_pipe(fd: int) -> None:
    """Give a pipe 1 MiB instead of 64 KiB: a writer streaming gigabytes into a busy
    reader then switches with it a sixteenth as often. Left as it is where refused."""
    import contextlib
    import fcntl

    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_BYTES)


def feed_command(argv: Sequence[str], feed: Callable[[IO[bytes]], None], *,
                 error_type: type[CommandFailed] = CommandFailed, what: str | None = None,
                 timeout: float | None = None) -> None:
    """Run ``argv`` (never through a shell) with ``feed`` writing its stdin.

    The command's stderr is kept (in a temporary file, so that a chatty command never
    blocks). When the command exits early (the pipe breaks), fails, or ``feed`` raises,
    the command is stopped and the error carries the command line and its stderr; an
    exception of ``feed`` itself is raised as it was.
    """
    import tempfile

    with tempfile.TemporaryFile() as errors:
        try:
            proc = subprocess.Popen(list(argv), stdin=subprocess.PIPE, bufsize=1 << 20,
                                    stdout=subprocess.DEVNULL, stderr=errors)
        except FileNotFoundError as exc:
            raise error_type(argv, 127, f"{argv[0]}: command not found ({exc})", what) from exc
        assert proc.stdin is not None
        _widen_pipe(proc.stdin.fileno())
        broken = False
        try:
            try:
                feed(proc.stdin)
            except BrokenPipeError:
                broken = True   # the command stopped reading: its status says why
            finally:
                try:
                    proc.stdin.close()
                except BrokenPipeError:
                    broken = True
            returncode = proc.wait(timeout=timeout)
        except BaseException as exc:
            proc.kill()
            proc.wait()
            if isinstance(exc, subprocess.TimeoutExpired):
                raise error_type(argv, None, f"no answer within {timeout:.0f} s",
                                 what) from exc
            raise
        if returncode != 0 or broken:
            errors.seek(0)
            text = errors.read().decode(errors="replace")
            raise error_type(argv, returncode, text or "stopped reading its input", what)
