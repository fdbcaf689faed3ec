#!/usr/bin/env bash
# GPU training check: a random-init TinyLLaVA-1.5B-shaped model (TinyLlama-1.1B config + SigLIP-so400m-384
# config, no downloads) finetunes for 20 steps under DeepSpeed ZeRO-2 in bf16, with flash-attention 2 when
# it imports (sdpa otherwise). Prints tokens/s, peak GPU memory and which attention ran (training/gpu_check.py).
#
#   bench/gpu_train_check.sh                      # on a GPU machine, from the repository root or anywhere
#   bench/gpu_train_check.sh --steps 40 --batch 4 # other settings go to python -m training.gpu_check
#   bench/gpu_train_check.sh --cpu-smoke          # the same code path at toy shapes on a CPU (a dry run)
#
# Python: $PYTHON if set, else .venv/bin/python when it has torch, transformers and deepspeed, else a new
# .venv-gpu with `pip install -e ".[train]"` (pip's default torch wheel is the CUDA build).
set -euo pipefail
cd "$(dirname "$0")/.."

smoke=0
args=()
for arg in "$@"; do
    if [ "$arg" = "--cpu-smoke" ]; then smoke=1; else args+=("$arg"); fi
done

has_stack() { "$1" -c "import torch, transformers, deepspeed, peft, yaml" >/dev/null 2>&1; }
if [ -n "${PYTHON:-}" ]; then
    py="$PYTHON"
elif [ -x .venv/bin/python ] && has_stack .venv/bin/python; then
    py=.venv/bin/python
else
    if [ ! -x .venv-gpu/bin/python ]; then
        python3 -m venv .venv-gpu
    fi
    py=.venv-gpu/bin/python
    has_stack "$py" || "$py" -m pip install -q -e ".[train]"
fi

export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
if [ "$smoke" = 1 ]; then
    exec "$py" -m training.gpu_check --tiny --steps 4 --batch 2 "${args[@]+"${args[@]}"}"
fi
"$py" - <<'PY'
import torch
if not torch.cuda.is_available():
    raise SystemExit("gpu_train_check: no CUDA GPU visible to torch (use --cpu-smoke for a CPU dry run)")
print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}")
PY
exec "$py" -m training.gpu_check --steps 20 --deepspeed zero2 "${args[@]+"${args[@]}"}"
