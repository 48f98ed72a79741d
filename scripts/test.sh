#!/usr/bin/env bash
# README command 2: set everything up on a fresh Debian machine and run the whole suite
# (what CI runs): ruff and mypy, then unit, golden and integration tests on the machine's
# own Slurm (Debian 12: 22.05) with real containers; then the integration tests again on
# Slurm 24.11, in a Debian 13 root with its own cluster and gw on Python 3.13
# (scripts/slurm-root.sh, docs/cluster.md). On Debian 13 the machine's Slurm is 24.11:
# the whole suite runs once. Extra arguments go to pytest, e.g. `scripts/test.sh -k harvest`.
#
#   scripts/test.sh --slurm 22.05 [PYTEST ARGS]   the machine's Slurm 22.05 alone
#   scripts/test.sh --slurm 24.11 [PYTEST ARGS]   Slurm 24.11 alone (the integration tests,
#                                                 or the tests named)
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

wanted=
if [ "${1:-}" = --slurm ]; then
    wanted=${2:-}
    shift 2 || true
    case $wanted in
        22.05 | 24.11) ;;
        *) echo "test: --slurm takes 22.05 or 24.11, not '$wanted'" >&2; exit 2 ;;
    esac
fi
bash scripts/install-deps.sh
# This machine's own Slurm: 22.05 on Debian 12, 24.11 on Debian 13.
own=$(slurmd -V 2>/dev/null | awk '{split($2, v, "."); print v[1] "." v[2]}')
releases=${wanted:-$own}
[ -n "$wanted" ] || [ "$own" = 24.11 ] || releases="$own 24.11"

# Each step's failure fails the release (set -e does not reach into a function called
# from `||`: every step is chained).
run_machine() {
    bash scripts/setup.sh && eval "$(bash scripts/cluster.sh env)" && bash scripts/lint.sh \
        && .venv/bin/pytest -ra --durations=30 "$@" tests   # --durations: keep it in budget
}

run_root() {
    bash scripts/slurm-root.sh start || return 1
    local arg named=
    for arg in "$@"; do case $arg in tests | tests/*) named=1 ;; esac; done
    [ -n "$named" ] || set -- "$@" tests/integration
    # The checkout is shared with this machine's run: no pytest cache written into it.
    bash scripts/slurm-root.sh run pytest -ra --durations=30 -p no:cacheprovider "$@"
}

status=0
for release in $releases; do
    if [ "$release" = "$own" ]; then
        echo "test: Slurm $release, this machine's: the whole suite" >&2
        run_machine "$@" || status=1
    elif [ "$release" = 24.11 ]; then
        echo "test: Slurm 24.11 in a Debian 13 root: the integration tests" >&2
        run_root "$@" || status=1
    else
        echo "test: this machine has Slurm $own; $release runs nowhere here" >&2
        status=2
    fi
done
exit "$status"
