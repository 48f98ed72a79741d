"""gw on a real terminal (a pseudo-terminal): colour only there and never with NO_COLOR,
tables as wide as the terminal, progress with sizes; in a pipe, plain text."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess

import pytest

from tests.conftest import gw_executable, run_gw

SGR = re.compile(rb"\x1b\[([0-9;]*)m")
COLOUR_CODES = {*range(30, 39), *range(40, 49), *range(90, 98), *range(100, 108)}


def in_terminal(args: list[str], env: dict[str, str]) -> bytes:
    """What gw writes to a terminal (stdout and stderr both on one pty)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([gw_executable(), *args], stdin=slave, stdout=slave, stderr=slave,
                            env={**os.environ, **env}, close_fds=True)
    os.close(slave)
    out = b""
    while True:
        ready, _, _ = select.select([master], [], [], 120)
        if not ready:
            break
        try:
            data = os.read(master, 65536)
        except OSError:  # the other end closed
            break
        if not data:
            break
        out += data
    os.close(master)
    assert proc.wait(timeout=60) == 0, out.decode(errors="replace")
    return out


def colours(text: bytes) -> set[int]:
    found = set()
    for params in SGR.findall(text):
        found |= {int(p) for p in params.split(b";") if p.isdigit()} & COLOUR_CODES
    return found


@pytest.fixture()
def upload(tmp_path):
    source = tmp_path / "algo"
    source.mkdir()
    (source / "weights.bin").write_bytes(os.urandom(8 << 20))
    return source


def test_colour_on_a_terminal_never_with_no_color_or_in_a_pipe(flow_home, upload):
    env = {**flow_home, "COLUMNS": "100"}
    coloured = in_terminal(["algo", "push", str(upload), "--name", "tty1"], env)
    assert colours(coloured), coloured[-400:]  # the bar is coloured: the check can fail
    assert b"MiB" in coloured  # sizes on the bar
    plain = in_terminal(["algo", "push", str(upload), "--name", "tty2"],
                        {**env, "NO_COLOR": "1"})
    assert not colours(plain), plain[-400:]
    piped = run_gw("algo", "push", str(upload), "--name", "tty3", env=env)
    assert b"\x1b" not in (piped.stdout + piped.stderr).encode()


def test_tables_fit_the_terminal(flow_home, upload):
    long_name = "a-name-longer-than-any-terminal-should-have-to-show-in-full-" * 2
    run_gw("algo", "push", str(upload), "--name", long_name[:100], "-q", env=flow_home)
    shown = in_terminal(["algo", "list"], {**flow_home, "COLUMNS": "60"}).decode()
    lines = [line for line in shown.replace("\r", "").splitlines() if line.strip()]
    assert lines and all(len(line) <= 60 for line in lines), lines
    assert any("\u2026" in line for line in lines)
    whole = run_gw("algo", "list", env={**flow_home, "COLUMNS": "60"}).stdout
    assert long_name[:100] in whole
