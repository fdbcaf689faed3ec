"""``harness run``: run tasks on a model."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from harness.cli.flags import DEFAULT_OUTPUT, add_judge_flags, judge_options, positive, shard
from harness.data.demo import DEMO_MODEL_SPEC


def add_parsers(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="run tasks on a model")
    run.add_argument("--tasks", required=True, help="comma-separated task names (see `harness list`)")
    run.add_argument("--model", default=DEMO_MODEL_SPEC, help="ADAPTER:TARGET, e.g. tinyllava:/ckpt (default: demo)")
    run.add_argument("--model-args", default=None, help="adapter options k=v,k=v (e.g. conv=phi,dtype=float32)")
    run.add_argument("--batch-size", type=positive, default=16)
    run.add_argument("--limit", type=positive, default=None,
                     help="a fixed stratified subset of about N samples per task (the same ids every run)")
    run.add_argument(
        "--data-root", default=None, help="LLaVA eval layout root (default: $HARNESS_DATA_ROOT, else demo data)"
    )
    run.add_argument("--output-dir", default=DEFAULT_OUTPUT, help="results root (run dirs, cache, store)")
    run.add_argument("--store", default=None, help="results store URL (default: sqlite in --output-dir)")
    run.add_argument("--protocol", default="llava15", help="a shipped protocol name or a protocol .toml file")
    run.add_argument("--device", default=None, help="cpu, cuda, cuda:N or mps (default: cuda when available)")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--num-workers", type=int, default=None, help="DataLoader workers for image decoding")
    run.add_argument("--no-cache", action="store_true", help="do not read or write the response cache")
    run.add_argument("--no-progress", action="store_true")
    run.add_argument("--shard", type=shard, default=None, metavar="I/N",
                     help="answer only every N-th batch from I (no launcher needed); `harness merge` joins the parts")
    run.add_argument("--no-judge", action="store_true",
                     help="judged tasks: generate and keep the answers without scoring (score later with --judge)")
    add_judge_flags(run)
    run.set_defaults(handler=main)


def main(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from harness.adapter import check_device
    from harness.run.distributed import Distributed
    from harness.run.evaluate import RunOptions, run
    from harness.run.runner import default_num_workers

    check_device(args.device)
    options = RunOptions(
        tasks=args.tasks,
        model=args.model,
        model_args=args.model_args,
        batch_size=args.batch_size,
        limit=args.limit,
        data_root=args.data_root,
        output_dir=args.output_dir,
        protocol=args.protocol,
        device=args.device,
        seed=args.seed,
        num_workers=default_num_workers() if args.num_workers is None else max(0, args.num_workers),
        store=args.store,
        use_cache=not args.no_cache,
        show_progress=not args.no_progress,
        judge=judge_options(args),
        no_judge=args.no_judge,
        shard=args.shard,
        argv=list(argv),
    )
    run(options, dist=Distributed.from_env())
    return 0
