"""Printing for people (aligned plain-text tables) and for scripts (``--json``).

Tables are plain text on purpose: rich costs 0.1 s to import, and `gw job list` is typed
all day. Progress bars (rich) live in gateway/progress.py and load only where used.
"""

from __future__ import annotations

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
    cells = [tuple(_cell(v) for v in row) for row in rows]
    widths = [max(map(len, column)) for column in zip(headers, *cells)]
    if sys.stdout.isatty():
        import shutil

        widths = fit_widths(widths, shutil.get_terminal_size().columns)
    lines = ("  ".join(_clip(text, width).ljust(width) for text, width in zip(row, widths))
             .rstrip() for row in [tuple(headers), *cells])
    sys.stdout.write("\n".join(lines))
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
    """Local ``YYYY-MM-DD HH:MM:SS`` (``-`` when unknown)."""
    if not epoch:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))
