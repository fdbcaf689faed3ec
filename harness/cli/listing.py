"""``harness list``: tasks, their versions and files, and model adapters."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.task import Task


def add_parsers(sub: argparse._SubParsersAction) -> None:
    lst = sub.add_parser("list", help="list tasks and model adapters")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(handler=main)


def main(args: argparse.Namespace, argv: Sequence[str]) -> int:
    from rich.console import Console
    from rich.table import Table

    from harness.registry import adapter_description, get_task, model_names, task_names

    tasks = [get_task(n) for n in task_names()]
    adapters = [(n, adapter_description(n)) for n in model_names()]
    if args.json:
        payload = {
            "tasks": [
                {"name": t.name, "version": t.version, "judged": t.judged, "default_judge": t.default_judge,
                 "headline": list(t.headline), "description": t.description,
                 "files": [f.model_dump() for f in t.data_files()],
                 "score_files": score_files(t), "run_only_files": run_only_files(t)}
                for t in tasks
            ],
            "models": [{"name": name, "description": about} for name, about in adapters],
        }
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return 0
    console = Console()
    table = Table(title="tasks")
    for col in ("task", "version", "judge", "headline"):
        table.add_column(col)
    for col in ("to score (and run)", "only to run"):
        table.add_column(col, overflow="fold")  # a path is folded, never cut
    for t in tasks:
        score, run = "\n".join(score_files(t)), "\n".join(run_only_files(t))
        table.add_row(t.name, t.version, judge_column(t), ", ".join(t.headline), score, run)
    console.print(table)
    console.print("harness score reads the first group of files; harness run reads both.")
    models = Table(title="model adapters")
    models.add_column("adapter")
    models.add_column("description")
    for name, about in adapters:
        models.add_row(name, about)
    console.print(models)
    return 0


def score_files(task: Task) -> list[str]:
    """The paths the task's official scorer reads (``harness score`` needs them; a run too)."""
    return [f.path for f in task.data_files() if f.needed_for == "score"]


def run_only_files(task: Task) -> list[str]:
    """The paths only a run reads: images, and question files the official scorer does not read."""
    return [f.path for f in task.data_files() if f.needed_for == "run"]


def judge_column(task: Task) -> str:
    """Whether a task needs a judge, and the papers' judge model."""
    if task.judged:
        return f"needed (paper: {task.default_judge})" if task.default_judge else "needed"
    return "no"
