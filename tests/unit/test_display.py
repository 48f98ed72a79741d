"""Tables fit a terminal and stay whole in a pipe."""

from __future__ import annotations

import io

from hpc_gateway.gateway import display
from hpc_gateway.gateway.display import fit_widths, print_table


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


ROWS = [(1, "a-very-long-job-name-" * 4, "RUNNING", "/home/alice/" + "x" * 60)]


def test_a_table_fits_the_terminal(monkeypatch):
    out = Terminal()
    monkeypatch.setattr(display.sys, "stdout", out)
    monkeypatch.setenv("COLUMNS", "80")
    print_table(ROWS, ["ID", "NAME", "STATE", "PATH"])
    lines = out.getvalue().splitlines()
    assert all(len(line) <= 80 for line in lines), lines
    assert "\u2026" in lines[1] and "RUNNING" in lines[1]


def test_a_table_in_a_pipe_is_whole(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(display.sys, "stdout", out)
    monkeypatch.setenv("COLUMNS", "80")
    print_table(ROWS, ["ID", "NAME", "STATE", "PATH"])
    assert ROWS[0][1] in out.getvalue() and ROWS[0][3] in out.getvalue()


def test_fit_widths_cuts_the_widest_first_and_never_below_the_minimum():
    fitted = fit_widths([2, 84, 7, 72], 80)
    assert sum(fitted) + 6 == 80 and fitted[0] == 2 and fitted[2] == 7
    assert abs(fitted[1] - fitted[3]) <= 1  # both wide columns gave way
    assert fit_widths([10, 10], 5) == [8, 8]
    assert fit_widths([3, 4], 80) == [3, 4]
