"""Samples/s at batch size 1 and 16 on the same model and requests, in one process.

    python bench/batching.py [--model tinyllava:demo] [--tasks gqa,mme] [--sizes 1,16] [--repeats 10]
                             [--image-reuse both|on|off]

Prints the throughput at each batch size, the ratio against the first (the baseline, measured in the
same run), and whether every answer was identical across batch sizes. With ``--image-reuse both`` (the
default) every size runs with each distinct image prepared once per run (on) and with every request
preparing its own images (off, as before image reuse), interleaved, and the answers of all runs are compared.
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from harness.data.check import resolve_data_root
from harness.data.demo import DEMO_MODEL_SPEC, ensure_demo_root
from harness.protocol import load_protocol
from harness.registry import get_adapter_class, get_tasks, parse_model_args, parse_model_spec
from harness.run.runner import Runner, default_num_workers
from harness.types import Request


def build_requests(task_spec: str, data_root: str | None, protocol_name: str) -> list[Request]:
    tasks = get_tasks(task_spec)
    root = resolve_data_root(data_root) or ensure_demo_root(tasks)
    protocol = load_protocol(protocol_name)
    requests: list[Request] = []
    for task in tasks:
        settings = protocol.settings_for(task)
        requests.extend(task.build_request(s, settings) for s in task.load(root))
    return requests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEMO_MODEL_SPEC)
    parser.add_argument("--model-args", default=None)
    parser.add_argument("--tasks", default="gqa,mme")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--protocol", default="llava15")
    parser.add_argument("--sizes", default="1,16")
    # 10: a batch-16 pass of the demo takes half a second, so with 3 the best still moved by 20% on a noisy machine
    parser.add_argument("--repeats", type=int, default=10, help="timed passes per batch size (best is kept)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--num-workers", type=int, default=None, help="preprocessing workers (default: as `run`)")
    parser.add_argument(
        "--image-reuse",
        choices=("both", "on", "off"),
        default="both",
        help="prepare each distinct image once per run (on), per request (off), or measure both",
    )
    args = parser.parse_args()

    requests = build_requests(args.tasks, args.data_root, args.protocol)
    workers = default_num_workers() if args.num_workers is None else args.num_workers
    name, target = parse_model_spec(args.model)
    adapter = get_adapter_class(name).from_spec(target, parse_model_args(args.model_args), args.device, 0)
    sizes = [int(s) for s in args.sizes.split(",")]
    modes = ["off", "on"] if args.image_reuse == "both" else [args.image_reuse]
    info = adapter.info
    n_images = len({ref.identity() for r in requests for ref in r.images})
    print(
        f"model {info.name} ({info.dtype} on {info.device}); {len(requests)} requests, {n_images} distinct images; "
        f"{workers} workers; torch threads {torch.get_num_threads()}"
    )

    Runner(adapter, None, batch_size=max(sizes), show_progress=False).answer("warm-up", requests[: max(sizes)])
    runs = [(mode, size) for mode in modes for size in sizes]
    texts: dict[tuple[str, int], list[str]] = {}
    rates = dict.fromkeys(runs, 0.0)
    errors = dict.fromkeys(runs, 0)
    prepared = dict.fromkeys(runs, 0)
    for _ in range(max(1, args.repeats)):  # interleaved, so every run sees the same machine noise
        for mode, size in runs:
            cache = None if mode == "on" else 0
            runner = Runner(adapter, None, batch_size=size, num_workers=workers, show_progress=False,
                            image_cache_bytes=cache)  # fmt: skip
            start = time.perf_counter()
            responses, _ = runner.answer(f"bs{size}", requests)
            rates[mode, size] = max(rates[mode, size], len(requests) / (time.perf_counter() - start))
            errors[mode, size] = sum(r.error is not None for r in responses)
            texts[mode, size] = [r.text for r in responses]
            prepared[mode, size] = runner.image_counts.prepared
    for mode, size in runs:
        images = f"{prepared[mode, size]} images prepared" if mode == "on" else "images prepared per request"
        print(
            f"image reuse {mode:>3}, batch size {size:>3}: {rates[mode, size]:8.2f} samples/s "
            f"(best of {args.repeats}; {errors[mode, size]} errors; {images})"
        )
    base = sizes[0]
    for mode in modes:
        for size in sizes[1:]:
            print(f"image reuse {mode:>3}: ratio bs{size}/bs{base}: {rates[mode, size] / rates[mode, base]:.2f}x")
    if len(modes) == 2:
        for size in sizes:
            print(f"batch size {size:>3}: reuse on / off: {rates['on', size] / rates['off', size]:.2f}x")
    reference = texts[runs[0]]
    same = sum(all(texts[run][i] == reference[i] for run in runs) for i in range(len(requests)))
    print(f"identical answers across all runs: {same}/{len(requests)} ({'yes' if same == len(requests) else 'NO'})")
    adapter.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
