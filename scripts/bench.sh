#!/usr/bin/env bash
# Runs the benchmarks in bench/ on the local cluster, each against a baseline timed in the
# same run, and prints the ratios. Needs scripts/setup.sh to have run.
# Writes bench/results.json. Usage: scripts/bench.sh [--quick]
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
eval "$(bash "$REPO/scripts/cluster.sh" env)"
PY="$REPO/.venv/bin/python"
export PATH="$REPO/.venv/bin:$PATH"
repeat=10; harvest_mb=1024
# Time gw as installed: pip compiles its bytecode at install time; an editable checkout
# (and an environment with PYTHONDONTWRITEBYTECODE) would recompile it on every start.
unset PYTHONDONTWRITEBYTECODE
"$PY" -m compileall -q "$REPO/gateway" "$REPO/spool" "$REPO/containers" "$REPO/cli.py" \
    "$REPO/templates" > /dev/null
if [ "${1:-}" = "--quick" ]; then repeat=3; harvest_mb=128; fi

work=$(mktemp -d /var/tmp/gw-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
export GW_HOME="$work/home"

# A small image and algorithm for the submit benchmark.
"$PY" -c "
import sys; sys.path[:0] = ['$REPO', '$REPO/scripts']
from pathlib import Path
from tests.support.images import busybox_rootfs, make_archive
base = Path('$work')
make_archive(base / 'bench.tar', [busybox_rootfs(base / 'rootfs')])
(base / 'algo').mkdir(); (base / 'algo' / 'run.sh').write_text('true\n')
"
gw image import "$work/bench.tar" --name bench:v1 --here -q >/dev/null
gw algo push "$work/algo" --name bench -q >/dev/null

echo "== gw vs baselines (median of $repeat runs; harvest and import: best run) =="
"$PY" "$REPO/bench/bench_cli.py" --home "$GW_HOME" --repeat "$repeat" \
    --harvest-mb "$harvest_mb" --json "$work/cli.json"
archive=$(bash "$REPO/scripts/make-demo-image.sh")
"$PY" "$REPO/bench/bench_import.py" "$archive" --json "$work/import.json"
"$PY" "$REPO/bench/bench_notebook.py" --home "$work/nb-home" --repeat "$repeat" \
    --json "$work/notebook.json"
"$PY" "$REPO/bench/bench_watcher.py" --runs "$repeat" --json "$work/watcher.json"
sweep_tasks=1000; if [ "${1:-}" = "--quick" ]; then sweep_tasks=100; fi
"$PY" "$REPO/bench/bench_sweep.py" --home "$GW_HOME" --tasks "$sweep_tasks" \
    --separate "$sweep_tasks" --json "$work/sweep.json"
"$PY" "$REPO/bench/bench_gang.py" --rounds "$repeat" --json "$work/gang.json"
if [ "${1:-}" = "--quick" ]; then image_args=(--files 10000 --gb 0.2); else image_args=(); fi
"$PY" "$REPO/bench/bench_image_stream.py" "${image_args[@]}" --scratch /var/tmp \
    --json "$work/image_stream.json"
"$PY" "$REPO/bench/bench_dashboard.py" --home "$work/web-home" --repeat "$repeat" \
    --json "$work/dashboard.json"
"$PY" -c "
import json; print(json.dumps(sum((json.load(open(f'$work/{n}.json')) for n in ('cli', 'import', 'notebook', 'watcher', 'sweep', 'gang', 'image_stream', 'dashboard')), []), indent=2))" > "$REPO/bench/results.json"
echo "results: $REPO/bench/results.json"
