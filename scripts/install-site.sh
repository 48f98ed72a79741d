#!/usr/bin/env bash
# Install gw for every user of a login node: a virtualenv on the system's python3 in
# PREFIX/venv, readable by all, and PREFIX/bin/gw to put on people's PATH (or in a module).
#   scripts/install-site.sh PREFIX      e.g. /opt/hpc-gateway (run as the site's admin)
# Installing again replaces the previous install. The multi-user tests install this way.
set -euo pipefail
PREFIX=${1:?usage: scripts/install-site.sh PREFIX}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${GW_SITE_PYTHON:-/usr/bin/python3}
umask 022

src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
# pip builds in the source tree: build from a copy, so the checkout stays clean.
tar -C "$REPO" --exclude=./.venv --exclude=./.git --exclude=./build --exclude='*.egg-info' \
    --exclude=__pycache__ --exclude=./.mypy_cache -cf - . | tar -C "$src" -xf -
mkdir -p "$PREFIX/bin"
"$PY" -m venv --clear "$PREFIX/venv"
"$PREFIX/venv/bin/pip" install --quiet --disable-pip-version-check "$src" \
    > "$src/pip.log" 2>&1 || { tail -20 "$src/pip.log" >&2; exit 1; }
ln -sfn "$PREFIX/venv/bin/gw" "$PREFIX/bin/gw"
chmod -R a+rX "$PREFIX"
echo "$PREFIX/bin/gw"
