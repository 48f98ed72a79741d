#!/usr/bin/env bash
# README command 2: set everything up on a fresh Debian 12 machine and run the whole suite
# (ruff and mypy, then unit, golden, and integration tests on the real local Slurm with
# real containers).
# Extra arguments go to pytest, e.g. `scripts/test.sh -k harvest`.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

bash "$REPO/scripts/setup.sh"
eval "$(bash "$REPO/scripts/cluster.sh" env)"
cd "$REPO"
bash scripts/lint.sh
# --durations: the slowest tests in every log, to keep the suite well under its budget.
exec .venv/bin/pytest -ra --durations=30 "$@" tests
