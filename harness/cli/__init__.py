"""``python -m harness``: one module per subcommand, found through ``COMMAND_MODULES``.

Each module has ``add_parsers(sub)``, which adds its subcommand(s) with ``handler(args, argv) -> int`` as
the parser default. Other packages contribute subcommands through the ``harness.commands`` entry-point
group (a module with the same ``add_parsers``); ``model_adapters`` contributes ``convert`` that way, so
the engine imports no model package.
"""

from __future__ import annotations

import argparse
import atexit
import difflib
import importlib
import os
import re
import sys
import threading
from collections.abc import Sequence
from importlib.metadata import entry_points
from typing import NoReturn

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
# The subcommand each module adds, so that `harness list` imports only listing.py (and not the model, store
# and statistics stacks the other commands need); tests/harness/test_first_hour.py keeps it in step.
COMMANDS = {
    "run": "harness.cli.run",
    "merge": "harness.cli.merge",
    "score": "harness.cli.score",
    "export": "harness.cli.score",
    "serve": "harness.cli.serve",
    "import": "harness.cli.import_runs",
    "leaderboard": "harness.cli.leaderboard",
    "report": "harness.cli.report",
    "compare": "harness.cli.stats",
    "gate": "harness.cli.stats",
    "plan": "harness.cli.stats",
    "list": "harness.cli.listing",
    "data": "harness.cli.data",
    "store": "harness.cli.store",
}


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line, with "did you mean" for a misspelt subcommand, choice or flag."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}{self._hints(message)} (see {self.prog} --help)\n")

    def _hints(self, message: str) -> str:
        choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if choice:
            return _closest(choice.group(1), re.findall(r"'([^']*)'", choice.group(2)))
        if message.startswith("unrecognized arguments:"):
            flags = [o for a in self._actions for o in a.option_strings if o.startswith("--")]
            words = message.split(":", 1)[1].split()
            return "".join(_closest(w.split("=")[0], flags) for w in words if w.startswith("--"))
        return ""


def _closest(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _plugins(command: str | None) -> list[object]:
    """Modules of the ``harness.commands`` group (only ``command``'s when one of them is named so)."""
    points = sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name)
    if command is not None and any(ep.name == command for ep in points):
        points = [ep for ep in points if ep.name == command]
    mods: list[object] = []
    for ep in points:
        try:
            mods.append(ep.load())
        except Exception as exc:  # a broken plugin must not take the whole CLI down
            print(f"warning: subcommand plugin {ep.name} ({ep.value}) failed to load: {exc}", file=sys.stderr)
    return mods


def _modules(command: str | None = None) -> list[object]:
    """The modules whose ``add_parsers`` the parser needs: ``command``'s alone when known, else all."""
    if command in COMMANDS:
        return [importlib.import_module(COMMANDS[command])]
    if command is not None and any(ep.name == command for ep in entry_points(group=ENTRY_POINT_GROUP)):
        return _plugins(command)
    return [importlib.import_module(name) for name in COMMAND_MODULES] + _plugins(None)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser of every subcommand, or only of the one ``argv`` names (imports stay light)."""
    command = argv[0] if argv and not argv[0].startswith("-") else None
    parser = Parser(prog="harness", description="Evaluate TinyLLaVA-style models exactly.")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in _modules(command):
        module.add_parsers(sub)  # type: ignore[attr-defined]
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args, extra = parser.parse_known_args(argv)
    if extra:  # reported by the subcommand's parser, which knows its flags
        command = next(a for a in parser._actions if a.dest == "command")
        command.choices[args.command].error(f"unrecognized arguments: {' '.join(extra)}")  # type: ignore[index]
    try:
        return int(args.handler(args, argv))
    except HarnessError as exc:
        from harness.console import safe_text

        print(f"error: {safe_text(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        note = getattr(args, "on_interrupt", "")
        print(f"interrupted{': ' + note if note else ''}", file=sys.stderr)
        return 130


_KEPT: list[object] = []  # what a command leaves to the end of the process (see ``keep_until_exit``)


def keep_until_exit(*objects: object) -> None:
    """Hold a command's large results to the end of the process, which then leaves without freeing them.

    Freeing millions of small objects one by one takes a noticeable share of ``harness score`` on a full
    benchmark (half a second on VQAv2 val); the operating system takes the whole memory back at once. Only
    ``cli()`` (the installed command and ``python -m harness``) leaves that way: ``main()``, as tests and
    embedding programs call it, returns as always and the objects are freed by the next command that keeps any.
    """
    _KEPT.clear()
    _KEPT.extend(objects)


def cli() -> NoReturn:
    """The command-line entry: ``main()``, then a quick exit when the command kept its results (``keep_until_exit``).

    The quick exit flushes stdout and stderr and runs the ``atexit`` handlers (logging's flush) as a normal exit
    does; it is skipped while another thread still runs, and when a stream cannot be flushed (a closed pipe).
    """
    code = main()
    if _KEPT and threading.active_count() == 1:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except OSError:
            raise SystemExit(code) from None
        atexit._run_exitfuncs()
        os._exit(code)
    raise SystemExit(code)
