"""``harness store``: list, check, clean and rebuild the results store.

- ``list``: every run with its status; a ``running`` row whose process is gone is shown as stale.
- ``check``: where the store and the run directories disagree (run directories without a row, rows whose
  run directory is gone, rows whose stored results.json is unreadable, stale ``running`` rows); exit 1
  when it finds any.
- ``clean``: stale ``running`` rows get their final status (``interrupted``, or what their run directory
  says when the process died after writing it); ``--remove`` deletes them instead.
- ``rebuild``: re-imports every run directory's results.json found under ``--runs`` into the store; a
  damaged SQLite file is first moved aside to ``<file>.corrupt-<UTC time>`` and a new store is made.

A ``running`` row is stale when it was recorded on this host by a process that no longer runs, or, for rows
of other hosts (or of an unknown process, such as rebuilt rows), when it has not recorded for
``--older-than`` hours (default 168: a week).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from harness.cli.flags import DEFAULT_OUTPUT

STALE_HOURS = 168.0


def _hours(value: str) -> float:
    number = float(value)
    if not number >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more hours, got {value}")
    return number


def add_parsers(sub: argparse._SubParsersAction) -> None:
    store = sub.add_parser("store", help="list, check, clean or rebuild the results store")
    actions = store.add_subparsers(dest="store_command", required=True)

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, help=help_text)
        parser.add_argument("--output-dir", default=DEFAULT_OUTPUT,
                            help="results root: the default store and run-directory folder (default: results)")
        parser.add_argument("--store", default=None, help="results store URL (default: sqlite in --output-dir)")
        parser.set_defaults(handler=main)
        return parser

    lst = action("list", "runs in the store with their status")
    lst.add_argument("--status", default=None, help="only runs with this status (running, complete, ...)")
    lst.add_argument("--json", action="store_true")
    check = action("check", "report run directories without a store row, rows without a run directory, "
                            "unreadable rows and stale running rows (exit 1 if any)")  # fmt: skip
    clean = action("clean", "settle `running` rows whose process is gone (mark them interrupted, or --remove)")
    rebuild = action("rebuild", "re-import every run directory's results.json; a damaged SQLite store is "
                                "moved aside first")  # fmt: skip
    for parser in (check, rebuild):
        parser.add_argument("--runs", nargs="+", default=None, metavar="DIR",
                            help="folders searched for run directories (default: --output-dir)")  # fmt: skip
    for parser in (check, clean):
        parser.add_argument("--older-than", type=_hours, default=STALE_HOURS, metavar="HOURS",
                            help="a running row of another host (or of an unknown process) is stale after this "
                                 f"long without a record (default {STALE_HOURS:g})")  # fmt: skip
    clean.add_argument("--remove", action="store_true", help="delete the stale rows instead of marking them")
    clean.add_argument("--dry-run", action="store_true", help="only say what would change")


def main(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from harness.cli.store_actions import run_action  # the store stack (SQLAlchemy), only when an action runs

    return run_action(args)
