"""``harness merge RUN_DIR ...``: join the partial runs of ``harness run --shard I/N`` into one scored run."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def add_parsers(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("merge", help="join the partial runs of `run --shard I/N` into one scored run")
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="the run directory of every shard 0..N-1")
    parser.add_argument("--output-dir", default=None,
                        help="results root of the merged run (default: the folder holding the first RUN_DIR)")
    parser.add_argument("--store", default=None, help="results store URL (default: sqlite in the results root)")
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from rich.console import Console

    from harness.console import print_run_summary, safe_text
    from harness.results.schema import load_results
    from harness.run.merge import merge_runs

    path = merge_runs(args.run_dirs, args.output_dir, args.store, list(argv))
    print_run_summary(Console(stderr=True), load_results(path), path)
    print(safe_text(path))
    return 0
