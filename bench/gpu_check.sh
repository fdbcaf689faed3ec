#!/usr/bin/env bash
# The GPU check of a lent GPU machine, in one script: the evaluation paths no CPU test reaches
# (bench/gpu_eval_check.py: a random-init TinyLLaVA-1.5B-shaped model in bf16 with sdpa and flash-attention 2
# when it imports; batch 1 vs 16 samples/s and identical answers; harness overhead against the adapter's own
# generate time; 1 vs 2 processes when two GPUs are there), then the training check (bench/gpu_train_check.sh).
#
#   bench/gpu_check.sh               # on a GPU machine
#   bench/gpu_check.sh --cpu-smoke   # the same code paths at toy shapes on a CPU (a dry run)
#
# Python: $PYTHON if set, else .venv/bin/python (bench/gpu_train_check.sh builds .venv-gpu when that lacks the
# training stack).
set -euo pipefail
cd "$(dirname "$0")/.."
py="${PYTHON:-.venv/bin/python}"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

if [ "${1:-}" = "--cpu-smoke" ]; then
    "$py" bench/gpu_eval_check.py --tiny --limit 8
    exec bash bench/gpu_train_check.sh --cpu-smoke --deepspeed none
fi
"$py" - <<'PY'
import torch
if not torch.cuda.is_available():
    raise SystemExit("gpu_check: no CUDA GPU visible to torch (use --cpu-smoke for a CPU dry run)")
print(f"GPUs: {torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
PY
echo "== evaluation"
"$py" bench/gpu_eval_check.py "$@"
echo "== training"
exec bash bench/gpu_train_check.sh
