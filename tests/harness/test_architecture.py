"""The engine's shape: few modules at its top, no import of a task or model package, every subcommand found."""

from __future__ import annotations

import ast
import subprocess
import sys

from tests.helpers.paths import REPO

HARNESS = REPO / "harness"
SUBCOMMANDS = {"run", "merge", "score", "export", "serve", "convert", "import", "leaderboard", "report", "compare",
               "gate", "plan", "list", "data", "store"}  # fmt: skip


def _imported_modules(source: str) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_at_most_twenty_modules_directly_in_harness() -> None:
    modules = sorted(p.name for p in HARNESS.glob("*.py"))
    assert len(modules) <= 20, modules


def test_the_engine_imports_no_task_and_no_model_package() -> None:
    offenders = []
    for path in sorted(HARNESS.rglob("*.py")):
        for module in _imported_modules(path.read_text(encoding="utf-8")):
            if module.split(".")[0] in ("tasks", "model_adapters", "training", "leaderboard"):
                offenders.append(f"{path.relative_to(REPO)}: {module}")
    assert offenders == []


def test_the_import_check_sees_lazy_imports_inside_functions() -> None:
    assert _imported_modules("def f():\n    from model_adapters.convert import x\n") == {"model_adapters.convert"}


def test_every_subcommand_is_found_including_the_contributed_convert() -> None:
    from harness.cli import build_parser

    parser = build_parser()
    choices = next(a for a in parser._actions if a.dest == "command").choices
    assert set(choices) == SUBCOMMANDS
    help_text = subprocess.run([sys.executable, "-m", "harness", "convert", "--help"], capture_output=True,
                               text=True, cwd=REPO, check=True).stdout  # fmt: skip
    assert "--model-args" in help_text and "dst" in help_text
