#!/usr/bin/env bash
# Our own regression gate: the demo model on a fixed demo subset, gated against ci/baseline.json.
#
#   ci/gate.sh                   run the subset, gate it (exit 1 on a significant drop beyond --max-drop);
#                                the PR-comment markdown and JUnit XML land in $GATE_OUT (default ci-out/)
#   ci/gate.sh --write-baseline  run the same subset and rewrite ci/baseline.json from it (commit the file)
#
# The subset is fixed: --limit takes a stratified sample by hash of the sample ids, the same every run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
TASKS="gqa,mme,scienceqa,mmbench,textvqa,vqav2_val"
LIMIT=48
OUT="${GATE_OUT:-ci-out}"

rm -rf "$OUT/runs"
"$PY" -m harness run --tasks "$TASKS" --limit "$LIMIT" --output-dir "$OUT/runs" --no-progress
run_dir="$(find "$OUT/runs" -mindepth 2 -maxdepth 2 -name results.json -printf '%h\n' | head -n 1)"

if [[ "${1:-}" == "--write-baseline" ]]; then
    "$PY" -m harness gate --write-baseline "$run_dir" --output ci/baseline.json
else
    "$PY" -m harness gate --baseline ci/baseline.json --candidate "$run_dir" --require-all-tasks \
        --max-drop 1.0 --max-drop mme=20 \
        --markdown "$OUT/gate.md" --junit "$OUT/junit.xml"
fi
