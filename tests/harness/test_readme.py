"""The README's two set-up commands stay true: CI runs the README's test command verbatim."""

from __future__ import annotations

from tests.helpers.paths import REPO as REPO_ROOT

ROOT = REPO_ROOT


def _readme_commands() -> list[str]:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert lines[0] == "```bash", "the README must start with the set-up commands"
    end = lines.index("```", 1)
    return lines[1:end]


def test_readme_starts_with_demo_and_test_commands() -> None:
    demo, tests = _readme_commands()
    assert "torch==2.13.0" in demo and demo.endswith("python -m harness run --tasks gqa,mme")
    assert "torch==2.13.0" in tests and tests.endswith("python -m pytest -q -n auto --maxprocesses 4 --dist loadfile")


def test_ci_runs_the_readme_test_command() -> None:
    _, tests = _readme_commands()
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests in ci
