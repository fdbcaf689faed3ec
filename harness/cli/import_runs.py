"""The ``import`` subcommand: ``python -m harness import lmms-eval PATH [--output-dir DIR] [--store URL]``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from harness.cli.flags import DEFAULT_OUTPUT

SOURCES = ("lmms-eval",)


def add_parsers(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("import", help="load another harness's results (lmms-eval) into the results store")
    parser.add_argument("source", choices=SOURCES, help="whose results these are")
    parser.add_argument("path", help="a results json, a samples jsonl, or a folder searched recursively")
    parser.add_argument("--output-dir", default=DEFAULT_OUTPUT, help="results root for the run directories")
    parser.add_argument("--store", default=None, help="results store URL (default: sqlite in --output-dir)")
    parser.set_defaults(handler=main)


def main(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from harness.console import safe_text
    from harness.importers.lmms_eval import import_lmms_eval

    runs = import_lmms_eval(args.path, args.output_dir, args.store, list(argv))
    for run in runs:
        headlines = ", ".join(
            f"{name} {metric} {rec.metrics[metric].value:.2f}"
            for name, rec in run.result.tasks.items()
            for metric in rec.headline[:1]
            if metric in rec.metrics
        )
        print(safe_text(f"imported {run.source} -> {run.run_dir} ({headlines or 'no metrics'})"))
        for note in run.notes:
            print(safe_text(f"  note: {note}"))
    return 0
