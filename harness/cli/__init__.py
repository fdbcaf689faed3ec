"""``python -m harness``: one module per subcommand, found through ``COMMAND_MODULES``.

Each module has ``add_parsers(sub)``, which adds its subcommand(s) with ``handler(args, argv) -> int`` as
the parser default. Other packages contribute subcommands through the ``harness.commands`` entry-point
group (a module with the same ``add_parsers``); ``model_adapters`` contributes ``convert`` that way, so
the engine imports no model package.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points

from harness.errors import HarnessError

COMMAND_MODULES = (
    "harness.cli.run",
    "harness.cli.merge",
    "harness.cli.score",  # score, export
    "harness.cli.serve",
    "harness.cli.import_runs",
    "harness.cli.leaderboard",
    "harness.cli.report",
    "harness.cli.stats",  # compare, gate, plan
    "harness.cli.listing",  # list
    "harness.cli.data",
    "harness.cli.store",  # store list, check, clean, rebuild
)
ENTRY_POINT_GROUP = "harness.commands"


def _modules() -> list[object]:
    mods: list[object] = [importlib.import_module(name) for name in COMMAND_MODULES]
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            mods.append(ep.load())
        except Exception as exc:  # a broken plugin must not take the whole CLI down
            print(f"warning: subcommand plugin {ep.name} ({ep.value}) failed to load: {exc}", file=sys.stderr)
    return mods


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="harness", description="Evaluate TinyLLaVA-style models exactly.")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in _modules():
        module.add_parsers(sub)  # type: ignore[attr-defined]
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args, argv))
    except HarnessError as exc:
        from harness.console import safe_text

        print(f"error: {safe_text(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted: finished work is saved; run the same command again to resume", file=sys.stderr)
        return 130
