"""Samples/s at batch size 1 and 16 on the same model and requests, in one process.

    python bench/batching.py [--model tinyllava:demo] [--tasks gqa,mme] [--sizes 1,16] [--repeats 3]

Prints the throughput at each batch size, the ratio against the first (the baseline, measured in the
same run), and whether every answer was identical across batch sizes.
"""

from __future__ import annotations

import argparse
import sys
import time

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
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per batch size (best is kept)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--num-workers", type=int, default=None, help="preprocessing workers (default: as `run`)")
    args = parser.parse_args()

    requests = build_requests(args.tasks, args.data_root, args.protocol)
    workers = default_num_workers() if args.num_workers is None else args.num_workers
    name, target = parse_model_spec(args.model)
    adapter = get_adapter_class(name).from_spec(target, parse_model_args(args.model_args), args.device, 0)
    sizes = [int(s) for s in args.sizes.split(",")]
    info = adapter.info
    print(f"model {info.name} ({info.dtype} on {info.device}); {len(requests)} requests; {workers} workers")

    Runner(adapter, None, batch_size=max(sizes), show_progress=False).answer("warm-up", requests[: max(sizes)])
    texts: dict[int, list[str]] = {}
    rates = dict.fromkeys(sizes, 0.0)
    errors = dict.fromkeys(sizes, 0)
    for _ in range(max(1, args.repeats)):  # interleaved, so both sizes see the same machine noise
        for size in sizes:
            runner = Runner(adapter, None, batch_size=size, num_workers=workers, show_progress=False)
            start = time.perf_counter()
            responses, _ = runner.answer(f"bs{size}", requests)
            rates[size] = max(rates[size], len(requests) / (time.perf_counter() - start))
            errors[size] = sum(r.error is not None for r in responses)
            texts[size] = [r.text for r in responses]
    for size in sizes:
        print(f"batch size {size:>3}: {rates[size]:8.2f} samples/s (best of {args.repeats}; {errors[size]} errors)")
    base = sizes[0]
    for size in sizes[1:]:
        same = sum(a == b for a, b in zip(texts[base], texts[size]))
        print(
            f"ratio bs{size}/bs{base}: {rates[size] / rates[base]:.2f}x; "
            f"identical answers: {same}/{len(requests)} ({'yes' if same == len(requests) else 'NO'})"
        )
    adapter.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
