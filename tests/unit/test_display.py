"""Tables fit a terminal and stay whole in a pipe."""

from __future__ import annotations

import io

from gateway.common import display
from gateway.common.display import fit_widths, print_table


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


def test_human_time_matches_strftime_in_zones_with_odd_offsets(monkeypatch):
    import time

    from gateway.common.display import _hour_offset, human_time

    # Lord Howe moves its clocks by 30 minutes; 2024-04-07 and 2024-10-06 are its changes.
    changes = [start + step for start in (1712415600, 1728142200, 1711846800)
               for step in range(-4000, 4000, 97)]
    for zone in ("UTC", "Asia/Kathmandu", "Australia/Eucla", "America/St_Johns",
                 "Australia/Lord_Howe", "Europe/Berlin"):
        monkeypatch.setenv("TZ", zone)
        time.tzset()
        _hour_offset.cache_clear()
        for epoch in (1795587322.9, 1700000000, 1711846799, 1711846800, *changes):
            assert human_time(epoch) == time.strftime("%Y-%m-%d %H:%M:%S",
                                                      time.localtime(epoch)), (zone, epoch)
    monkeypatch.delenv("TZ")
    time.tzset()
    _hour_offset.cache_clear()
