"""``harness list``: tasks, their versions and files, and model adapters."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from harness.task import Task


def add_parsers(sub: argparse._SubParsersAction) -> None:
    lst = sub.add_parser("list", help="list tasks and model adapters")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(handler=main)


def main(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from rich.console import Console
    from rich.table import Table

    from harness.registry import get_adapter_class, get_task, model_names, task_names

    tasks = [get_task(n) for n in task_names()]
    adapters = [get_adapter_class(n) for n in model_names()]
    if args.json:
        payload = {
            "tasks": [
                {"name": t.name, "version": t.version, "judged": t.judged, "default_judge": t.default_judge,
                 "headline": list(t.headline), "description": t.description,
                 "files": [f.model_dump() for f in t.data_files()]}
                for t in tasks
            ],
            "models": [{"name": a.name, "description": a.description} for a in adapters],
        }
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return 0
    console = Console()
    table = Table(title="tasks")
    for col in ("task", "version", "judge", "headline", "files needed (score / +run)"):
        table.add_column(col)
    for t in tasks:
        files = "\n".join(f"{f.path}{'' if f.needed_for == 'score' else '  (+run)'}" for f in t.data_files())
        table.add_row(t.name, t.version, judge_column(t), ", ".join(t.headline), files)
    console.print(table)
    models = Table(title="model adapters")
    models.add_column("adapter")
    models.add_column("description")
    for a in adapters:
        models.add_row(a.name, a.description)
    console.print(models)
    return 0


def judge_column(task: Task) -> str:
    """Whether a task needs a judge, and the papers' judge model."""
    if task.judged:
        return f"needed (paper: {task.default_judge})" if task.default_judge else "needed"
    return "no"
