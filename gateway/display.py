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
    """An aligned table; an empty one prints just a note on stderr."""
    if not rows:
        print("(none)", file=sys.stderr)
        return
    cells = [tuple(_cell(v) for v in row) for row in rows]
    widths = [max(map(len, column)) for column in zip(headers, *cells)]
    template = "  ".join(f"{{:<{w}}}" for w in widths)
    sys.stdout.write("\n".join(template.format(*r).rstrip() for r in [tuple(headers), *cells]))
    sys.stdout.write("\n")


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
