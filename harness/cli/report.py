"""``harness report RUN [--vs BASE] [--output DIR]``: a markdown + PNG summary of a run."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from harness.cli.flags import DEFAULT_OUTPUT


def add_parsers(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("report", help="write a markdown + PNG summary of a run (optionally against another)")
    parser.add_argument("run", help="a run directory, its results.json, or a run id in the store")
    parser.add_argument("--vs", default=None, metavar="BASE", help="compare against this run (deltas are RUN - BASE)")
    parser.add_argument("--output", default=None, metavar="DIR",
                        help="folder for report.md and headline.png (default: reports/<run>[-vs-<base>])")
    parser.add_argument("--store", default=None,
                        help=f"results store URL for run ids (default: sqlite in {DEFAULT_OUTPUT})")
    parser.add_argument("--tasks", default=None, help="comma-separated tasks to include (default: all)")
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from harness.console import safe_text
    from harness.report.run_report import write_report

    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    report = write_report(args.run, args.vs, args.output, args.store, tasks)
    print(safe_text(f"wrote {report.markdown} and {report.chart}"))
    return 0
