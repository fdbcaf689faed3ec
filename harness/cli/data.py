"""``harness data [TASK]`` (what each task needs; check a root) and ``harness data prepare TASK``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from harness.errors import HarnessError, UsageError

_PREPARE_ONLY = ("source", "revision", "repo")
NEEDED_FOR = {"score": "score and run", "run": "run only"}  # what DataFile.needed_for means, in words


def add_parsers(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser(
        "data",
        help="what each task needs; check a data root; prepare one from a Hugging Face copy",
        description="data [TASK] [--data-root DIR]: list or check files. "
        "data prepare TASK --source hf|DIR [--revision R] [--repo ID] --data-root DIR: build them.",
    )
    data.add_argument("words", nargs="*", metavar="[prepare] TASK", help="a task name, or 'prepare' and a task name")
    data.add_argument("--data-root", default=None)
    data.add_argument("--source", default=None, help="prepare: 'hf' (download from the hub) or a downloaded snapshot")
    data.add_argument("--revision", default=None, help="prepare --source hf: branch, tag or commit (default: main)")
    data.add_argument("--repo", default=None, help="prepare: dataset repo id instead of the task's own")
    data.add_argument("--no-progress", action="store_true")
    data.set_defaults(handler=main)


def main(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """``data prepare TASK ...`` or ``data [TASK]``."""
    words = list(args.words)
    if words and words[0] == "prepare":
        if len(words) != 2:
            raise UsageError("usage: data prepare TASK --source hf|DIR --data-root DIR")
        return prepare(words[1], args)
    given = [f"--{name}" for name in _PREPARE_ONLY if getattr(args, name) is not None]
    if given:
        raise UsageError(f"{', '.join(given)} only apply to 'data prepare TASK'")
    if len(words) > 1:
        raise UsageError(f"data takes one task name, got: {' '.join(words)}")
    return check(words[0] if words else None, args.data_root)


def prepare(name: str, args: argparse.Namespace) -> int:
    from rich.console import Console

    from harness.data.prepare import prepare_task, resolve_prepare_root
    from harness.registry import get_task

    if not args.source:
        raise UsageError("data prepare needs --source hf (download) or --source DIR (a downloaded snapshot)")
    task = get_task(name)
    root = resolve_prepare_root(args.data_root)
    console = Console(stderr=True)
    report = prepare_task(task, args.source, root, args.revision, args.repo, console, not args.no_progress)
    print(f"prepared {task.name} under {root}: {report.n_samples} samples; sources: {report.sources_file}")
    for line in report.notes:
        print(f"  note: {line}")
    return 0


def check(task_name: str | None, data_root: str | None) -> int:
    from rich.console import Console
    from rich.table import Table

    from harness.console import plain
    from harness.data.check import check_task, has_data, load_for, resolve_data_root
    from harness.registry import get_task, task_names

    tasks = [get_task(task_name)] if task_name else [get_task(n) for n in task_names()]
    root = resolve_data_root(data_root)
    console = Console()
    missing = 0
    for task in tasks:
        title = f"{task.name} v{task.version}" + (f" under {root}" if root else "")
        table = Table(title=plain(title), title_justify="left")
        for col in ("path", "needed for", "status" if root else "description", "source"):
            table.add_column(col)
        if root is None:
            for f in task.data_files():
                table.add_row(f.path, NEEDED_FOR[f.needed_for], f.description, f.source)
        else:
            for st in check_task(task, root, "run"):
                missing += not st.present
                status = f"[green]ok[/] {plain(st.detail)}" if st.present else "[red]MISSING[/]"
                source = "" if st.present else st.spec.source
                table.add_row(st.spec.path, NEEDED_FOR[st.spec.needed_for], status, source)
        console.print(table)
        if root is not None and has_data(task, root, "score"):
            only_score = "" if has_data(task, root, "run") else " (enough to score answers; a run needs the rest)"
            try:
                console.print(f"  {len(load_for(task, root, 'score'))} samples{only_score}")
            except HarnessError as exc:
                missing += 1
                console.print(f"  [red]cannot load:[/] {plain(exc)}")
    if root is None:
        console.print("check a root with: python -m harness data --data-root DIR")
    return 1 if missing else 0
