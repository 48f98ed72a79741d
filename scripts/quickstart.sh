#!/usr/bin/env bash
# README command 1: set everything up on a fresh Debian 12 machine and run the demo training
# flow on the local cluster: a real image (debootstrap rootfs with python3 + numpy, saved as
# a `docker save` archive) -> gw image import -> gw algo push / gw data push -> gw job submit
# -> a model version with its lineage.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

bash "$REPO/scripts/setup.sh"
eval "$(bash "$REPO/scripts/cluster.sh" env)"
exec bash "$REPO/scripts/demo.sh"
