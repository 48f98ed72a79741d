#!/usr/bin/env bash
# README command 1: set everything up on a fresh Debian machine and run the demo training
# flow on the local cluster: a real image (debootstrap rootfs with python3 + numpy, saved as
# a `docker save` archive) -> gw image import -> gw algo push / gw data push -> gw job submit
# -> a model version with its lineage.
#   scripts/quickstart.sh --slurm 24.11   the same flow on Slurm 24.11, in the Debian 13
#                                         root of scripts/slurm-root.sh (its own home,
#                                         .gw-demo/home-24.11)
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if [ "${1:-}" = --slurm ]; then
    case ${2:-} in
        24.11)
            bash "$REPO/scripts/install-deps.sh"
            bash "$REPO/scripts/slurm-root.sh" start
            cd "$REPO"
            exec bash scripts/slurm-root.sh run env GW_HOME="$REPO/.gw-demo/home-24.11" \
                bash scripts/demo.sh ;;
        22.05) ;;
        *) echo "quickstart: --slurm takes 22.05 or 24.11, not '${2:-}'" >&2; exit 2 ;;
    esac
fi

bash "$REPO/scripts/setup.sh"
eval "$(bash "$REPO/scripts/cluster.sh" env)"
exec bash "$REPO/scripts/demo.sh"
