"""Timing helpers shared by the benchmarks: medians of repeated wall-clock runs."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def gw_exe() -> str:
    """The `gw` console script of the running interpreter's environment."""
    return shutil.which("gw", path=str(Path(sys.executable).parent)) or "gw"


def gw(env: dict[str, str], *args: str) -> str:
    """Run `gw` with ``env`` (the whole environment) and return its output; a failure
    ends the benchmark with its stderr."""
    proc = subprocess.run([gw_exe(), *args], capture_output=True, text=True, env=env,
                          check=False)
    if proc.returncode != 0:
        raise SystemExit(f"gw {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc.stdout


def run(argv: Sequence[str], env: dict[str, str] | None = None) -> None:
    """Run a command, failing loudly with its stderr."""
    proc = subprocess.run(list(argv), capture_output=True, text=True, check=False,
                          env=None if env is None else {**os.environ, **env})
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr}")


def median_seconds(action: Callable[[], object], repeat: int, setup=None) -> float:
    """Median wall time of ``action`` over ``repeat`` runs (``setup`` untimed before each)."""
    times = []
    for _ in range(repeat):
        if setup:
            setup()
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def report(name: str, ours: float, baseline: float, baseline_name: str, goal: float,
           lower_is_better: bool = True) -> dict[str, object]:
    """Print one result line and return it as a record."""
    ratio = ours / baseline if baseline else float("inf")
    ok = ratio <= goal
    print(f"{name:<34} gw {ours:8.3f} s   {baseline_name:<22} {baseline:8.3f} s   "
          f"ratio {ratio:7.3g}x   goal <= {goal}x   {'met' if ok else 'MISSED'}", flush=True)
    return {"name": name, "gw_s": ours, "baseline": baseline_name, "baseline_s": baseline,
            "ratio": ratio, "goal": goal, "met": ok}
