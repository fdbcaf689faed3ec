"""Evaluation paths of a GPU that no CPU test reaches (``bench/gpu_check.sh`` runs it).

A randomly initialised model at TinyLLaVA-1.5B shape (TinyLlama-1.1B + SigLIP-so400m-384, configs only: nothing
is downloaded) is saved as an HF Llava checkpoint and answers demo requests through the ``tinyllava`` adapter in
bf16, with sdpa and, when it imports, flash-attention 2. Printed, per attention: samples/s at batch size 1 and
16 and whether the answers are identical; the harness's overhead as a percentage of the adapter's own
prepare + generate time on the same batches; and, when two GPUs are there, samples/s of 1 against 2 processes
(torchrun) and whether their answers are identical. ``--tiny``: toy shapes in fp32 on the CPU (a dry run).

    python bench/gpu_eval_check.py [--tasks gqa,mme] [--limit 64] [--tiny]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def write_checkpoint(work: Path, tiny: bool) -> Path:
    """A random-init Llava checkpoint at TinyLLaVA-1.5B shape (toy shape with ``tiny``)."""
    import torch

    from training import demo_data
    from training.gpu_check import write_model_configs
    from training.model import assemble, load_language_model, load_tokenizer, load_vision_tower
    from training.saving import save_checkpoint

    data_path, _ = demo_data.write_dataset(work / "data", 0, 16)
    llm_dir, tower_dir = write_model_configs(work, tiny, demo_data.corpus(json.loads(data_path.read_text())))
    torch.manual_seed(0)
    llm = load_language_model(str(llm_dir), torch.float32, "sdpa")
    tower, processor = load_vision_tower(str(tower_dir), torch.float32, "sdpa")
    tokenizer = load_tokenizer(str(llm_dir))
    model = assemble(llm, tower, tokenizer)
    return save_checkpoint(model, tokenizer, processor, work / "checkpoint", conv_mode="v1",
                           image_aspect_ratio="pad", training={"note": "random init (gpu_eval_check)"})  # fmt: skip


def demo_requests(tasks: str, limit: int) -> list[Any]:
    from harness.data.demo import ensure_demo_root
    from harness.protocol import load_protocol
    from harness.registry import get_tasks

    chosen = get_tasks(tasks)
    root = ensure_demo_root(chosen)
    protocol = load_protocol("llava15")
    requests = []
    for task in chosen:
        settings = {**protocol.settings_for(task), "max_new_tokens": 16}
        requests.extend(task.build_request(s, settings) for s in task.subset(task.load(root), limit))
    return requests


def timed_answers(adapter: Any, requests: list[Any], batch_size: int) -> tuple[list[str], float]:
    from harness.run.runner import Runner

    runner = Runner(adapter, None, batch_size, num_workers=0, show_progress=False)
    start = time.perf_counter()
    responses, _ = runner.answer("check", requests)
    return [r.text if r is not None else "" for r in responses], time.perf_counter() - start


def bare_generate_seconds(adapter: Any, requests: list[Any], batch_size: int) -> float:
    """The adapter alone (prepare + generate) on the runner's batches: the floor the harness adds to."""
    from harness.run.runner import plan_batches

    prepare = adapter.preparer()
    start = time.perf_counter()
    for batch in plan_batches(requests, batch_size, adapter.sort_key):
        members = [requests[i] for i in batch]
        adapter.generate(members, [prepare(r) for r in members])
    return time.perf_counter() - start


def attention_check(checkpoint: Path, attn: str, device: str, dtype: str, requests: list[Any]) -> dict[str, Any]:
    from model_adapters.tinyllava import TinyLlavaAdapter

    adapter = TinyLlavaAdapter.from_spec(str(checkpoint), {"attn": attn, "dtype": dtype}, device, 0)
    try:
        timed_answers(adapter, requests[:4], 4)  # warm-up: kernels, allocator
        one, one_s = timed_answers(adapter, requests, 1)
        sixteen, sixteen_s = timed_answers(adapter, requests, 16)
        bare = bare_generate_seconds(adapter, requests, 16)
        _, harness_s = timed_answers(adapter, requests, 16)
    finally:
        adapter.close()
    n = len(requests)
    return {
        "samples_per_s_batch_1": round(n / one_s, 1),
        "samples_per_s_batch_16": round(n / sixteen_s, 1),
        "batch_16_vs_1": round(one_s / sixteen_s, 2),
        "answers_identical_batch_1_vs_16": one == sixteen,
        "answers_differing": sum(a != b for a, b in zip(one, sixteen)),
        "harness_overhead_percent": round(100 * (harness_s - bare) / bare, 1),
    }


def processes_check(checkpoint: Path, tasks: str, limit: int, attn: str) -> dict[str, Any]:
    """``harness run`` with 1 and 2 processes on the first two GPUs: samples/s and identical answers."""
    rows: dict[int, tuple[float, dict[str, str]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for nproc in (1, 2):
            out = Path(tmp) / f"p{nproc}"
            launcher = [sys.executable] if nproc == 1 else [
                sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]  # fmt: skip
            subprocess.run([*launcher, "-m", "harness", "run", "--tasks", tasks, "--limit", str(limit), "--no-cache",
                            "--no-progress", "--device", "cuda", "--model", f"tinyllava:{checkpoint}",
                            "--model-args", f"attn={attn}", "--output-dir", str(out)],
                           cwd=REPO, check=True, capture_output=True)  # fmt: skip
            result = json.loads(next(out.glob("*/results.json")).read_text())
            n = sum(t["timing"]["n_generated"] for t in result["tasks"].values())
            seconds = sum(t["timing"]["seconds"] for t in result["tasks"].values())
            answers = {}
            for path in out.glob("*/samples/*.jsonl"):
                for line in path.read_text().splitlines():
                    record = json.loads(line)
                    answers[f"{path.stem}/{record['id']}"] = (record["response"] or {}).get("text", "")
            rows[nproc] = (n / seconds, answers)
    return {
        "samples_per_s_1_process": round(rows[1][0], 1),
        "samples_per_s_2_processes": round(rows[2][0], 1),
        "ratio_2_vs_1": round(rows[2][0] / rows[1][0], 2),
        "answers_identical_1_vs_2_processes": rows[1][1] == rows[2][1],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="gqa,mme")
    parser.add_argument("--limit", type=int, default=64, help="samples per task")
    parser.add_argument("--tiny", action="store_true", help="toy shapes and fp32 on the CPU (a dry run)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    gpu = torch.cuda.is_available() and not args.tiny
    device, dtype = ("cuda", "bfloat16") if gpu else ("cpu", "float32")
    report: dict[str, Any] = {
        "device": torch.cuda.get_device_name(0) if gpu else "cpu",
        "shape": "toy" if args.tiny else "TinyLlama-1.1B + SigLIP-so400m-384 (random init)",
        "dtype": dtype,
    }
    attentions = ["sdpa"] + (["flash_attention_2"] if gpu and importlib.util.find_spec("flash_attn") else [])
    with tempfile.TemporaryDirectory(prefix="gpu-eval-check-") as tmp:
        checkpoint = write_checkpoint(Path(tmp), args.tiny)
        requests = demo_requests(args.tasks, args.limit)
        report["requests"] = len(requests)
        for attn in attentions:
            report[attn] = attention_check(checkpoint, attn, device, dtype, requests)
        if gpu and torch.cuda.device_count() >= 2:
            report["processes"] = processes_check(checkpoint, args.tasks, args.limit, "sdpa")
        else:
            report["processes"] = "skipped: fewer than two GPUs"
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
