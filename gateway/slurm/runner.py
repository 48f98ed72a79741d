"""Where commands run: the seam between the gateway and a host.

Slurm commands go through a :class:`Runner`. :class:`LocalRunner` runs them on this host;
running them on a login node over SSH (fabric) is another runner with the same method,
not edits all over.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from gateway.common.errors import CommandFailed
from gateway.common.process import run_command


class Runner(Protocol):
    """Runs one command and returns it finished; failures raise ``error_type``."""

    def run(self, argv: Sequence[str], *, timeout: float | None = None,
            cwd: Path | None = None, error_type: type[CommandFailed] = CommandFailed,
            what: str | None = None, slow_notice: str | None = None
            ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` (never through a shell); say ``slow_notice`` if it is slow."""
        ...


class LocalRunner:
    """Runs commands on this host."""

    def run(self, argv: Sequence[str], *, timeout: float | None = None,
            cwd: Path | None = None, error_type: type[CommandFailed] = CommandFailed,
            what: str | None = None, slow_notice: str | None = None
            ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` here through :func:`gateway.process.run_command`."""
        return run_command(argv, timeout=timeout, cwd=cwd, error_type=error_type, what=what,
                           slow_notice=slow_notice)
