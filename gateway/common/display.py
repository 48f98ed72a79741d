"""Printing for people (aligned plain-text tables) and for scripts (``--json``).

Tables are plain text on purpose: rich costs 0.1 s to import, and `gw job list` is typed
all day. Progress bars (rich) live in gateway/common/progress.py and load only where used.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Sequence
from typing import Any


def print_json(value: Any) -> None:
    """Stable, indented JSON on stdout."""
    json.dump(value, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")


def print_table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> None:
    """An aligned table; an empty one prints just a note on stderr. On a terminal the
    table fits its width (the widest columns are cut, with an ellipsis); into a pipe or a
    file every cell is whole."""
    if not rows:
        print("(none)", file=sys.stderr)
        return
    cells = [tuple(["-" if v is None else str(v) for v in row]) for row in rows]
    if any("\n" in text for row in cells for text in row):
        cells = [tuple(text.replace("\n", "\\n") for text in row) for row in cells]
    widths = [max(map(len, column)) for column in zip(headers, *cells, strict=False)]
    if sys.stdout.isatty():
        import shutil

        fitted = fit_widths(widths, shutil.get_terminal_size().columns)
        cut = [i for i, (was, now) in enumerate(zip(widths, fitted, strict=False)) if now < was]
        if cut:
            cells = [tuple(_clip(text, fitted[i]) if i in cut else text
                           for i, text in enumerate(row)) for row in cells]
        widths = fitted
    template = "  ".join(f"{{:<{w}}}" for w in widths)
    sys.stdout.write("\n".join([template.format(*row).rstrip()
                                for row in [tuple(headers), *cells]]))
    sys.stdout.write("\n")


# A column is never cut narrower than this.
MIN_COLUMN = 8


def fit_widths(widths: list[int], columns: int) -> list[int]:
    """Column widths that fit ``columns`` (two spaces between), cutting the widest first."""
    widths = list(widths)
    total = sum(widths) + 2 * (len(widths) - 1)
    while total > columns:
        widest = max(range(len(widths)), key=widths.__getitem__)
        if widths[widest] <= MIN_COLUMN:
            break
        second = max((w for i, w in enumerate(widths) if i != widest), default=MIN_COLUMN)
        cut = min(total - columns, widths[widest] - max(second, MIN_COLUMN) or 1)
        widths[widest] -= max(cut, 1)
        total -= max(cut, 1)
    return widths


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[:max(width - 1, 0)] + "\u2026"


def print_fields(pairs: Sequence[tuple[str, Any]]) -> None:
    """``key: value`` lines, keys aligned."""
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        print(f"{key + ':':<{width + 1}} {_cell(value)}")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    text = str(value)
    return text.replace("\n", "\\n") if "\n" in text else text


def human_size(size: int | None) -> str:
    """``1536`` -> ``1.5 KiB``."""
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def human_time(epoch: float | None) -> str:
    """Local ``YYYY-MM-DD HH:MM:SS`` (``-`` when unknown), as ``time.strftime`` gives it.

    A listing formats thousands of these: the zone's offset is looked up once per hour of
    history (and the date once per day), the rest is arithmetic. An hour in which the
    offset changes is formatted by ``strftime`` itself."""
    if not epoch:
        return "-"
    second = int(epoch)
    offset = _hour_offset(second // 3600)
    if offset is None:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
    days, rest = divmod(second + offset, 86400)
    hours, rest = divmod(rest, 3600)
    return f"{_utc_date(days)} {hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


@functools.lru_cache(maxsize=8192)
def _hour_offset(hour: int) -> int | None:
    """The local offset from UTC through this hour, or None if it changes within it."""
    first, last = time.localtime(hour * 3600), time.localtime(hour * 3600 + 3599)
    return first.tm_gmtoff if first.tm_gmtoff == last.tm_gmtoff else None


@functools.lru_cache(maxsize=4096)
def _utc_date(days: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(days * 86400))
