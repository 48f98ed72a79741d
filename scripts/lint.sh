#!/usr/bin/env bash
# ruff and mypy over the whole project, as CI runs them (scripts/test.sh calls this first).
# mypy checks the package as it is installed (hpc_gateway.gateway, ...): the editable
# install's import hook is invisible to mypy, so a link named hpc_gateway to the checkout
# gives it the installed layout.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
.venv/bin/ruff check .
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
ln -s "$REPO" "$root/hpc_gateway"
(cd "$root" && MYPYPATH="$root" "$REPO/.venv/bin/mypy" --cache-dir "$REPO/.mypy_cache" \
    --config-file "$REPO/pyproject.toml" \
    -p hpc_gateway.gateway -p hpc_gateway.containers -p hpc_gateway.spool -m hpc_gateway.cli -m hpc_gateway.tests.support.fakes)
