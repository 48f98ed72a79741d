#!/usr/bin/env bash
# The demo training flow (run by scripts/quickstart.sh once the cluster is up).
# Uses GW_HOME if set, otherwise .gw-demo/home in the repository.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export GW_HOME=${GW_HOME:-$REPO/.gw-demo/home}
# The project's virtualenv, where it runs here (in the Debian 13 root of
# scripts/slurm-root.sh, the root's own gw is on PATH already).
if "$REPO/.venv/bin/python" -c '' 2> /dev/null; then export PATH="$REPO/.venv/bin:$PATH"; fi
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

step "building the demo image (Debian 12 + python3 + numpy) as a docker save archive"
archive=$(bash "$REPO/scripts/make-demo-image.sh")

step "gw image import $archive --name demo-numpy:v1 --wait"
gw image import "$archive" --name demo-numpy:v1 --wait

step "gw data push (a generated regression dataset)"
data_dir=$(mktemp -d)
trap 'rm -rf "$data_dir"' EXIT
python3 "$REPO/examples/linreg/make_dataset.py" "$data_dir"
gw data push "$data_dir" --name linreg-data --description "y = 3*x1 - 2*x2 + 0.5 + noise"

step "gw algo push examples/linreg/algo --name linreg"
gw algo push "$REPO/examples/linreg/algo" --name linreg --framework numpy \
    --task regression --description "linear regression by gradient descent"

step "gw job submit ... --wait -- python3 train.py --epochs 300"
gw job submit --algo linreg --image demo-numpy:v1 --data linreg-data --name demo-train \
    --cpus 1 --mem 1G --shm 64M --time 0:10:00 --wait -- python3 train.py --epochs 300
job_id=$(gw job list --limit 1 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')

step "gw job logs $job_id"
gw job logs "$job_id"

step "gw model versions linreg"
gw model versions linreg

step "gw model show linreg (the newest version and its lineage)"
gw model show linreg
gw model cat linreg metrics.json
