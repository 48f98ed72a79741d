#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine (as root) for hpc-gateway: system packages, the
# project's virtualenv (.venv) and the local one-node Slurm cluster. Safe to run again.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

bash "$REPO/scripts/install-deps.sh"

if [ ! -x "$REPO/.venv/bin/gw" ] || [ "$REPO/pyproject.toml" -nt "$REPO/.venv/.installed" ]; then
    echo "setup: creating $REPO/.venv"
    python3 -m venv "$REPO/.venv"
    "$REPO/.venv/bin/pip" install --quiet --disable-pip-version-check -e "${REPO}[test]"
    touch "$REPO/.venv/.installed"
fi

bash "$REPO/scripts/cluster.sh" start
