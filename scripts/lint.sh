#!/usr/bin/env bash
# ruff and mypy over the whole project, as CI runs them (scripts/test.sh calls this first).
# mypy reads the folders themselves (gateway, containers, spool, cli.py) and the tests'
# fake scheduler, which it holds to the Scheduler protocol.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
.venv/bin/ruff check .
.venv/bin/mypy --cache-dir "$REPO/.mypy_cache" --config-file "$REPO/pyproject.toml" \
    -p gateway -p containers -p spool -m cli -m tests.support.fakes
