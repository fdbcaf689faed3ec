"""Our own CI gate: ``ci/gate.sh`` evaluates a fixed demo subset against the committed ``ci/baseline.json``.

The baseline must cover exactly the samples the script evaluates (same tasks, same ``--limit`` subset);
when the demo data or the subset changes, regenerate it with ``ci/gate.sh --write-baseline``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.registry import get_task
from harness.results.loading import read_baseline
from tests.helpers.paths import REPO as REPO_ROOT

ROOT = REPO_ROOT
SCRIPT = ROOT / "ci" / "gate.sh"
BASELINE = ROOT / "ci" / "baseline.json"
REGENERATE = "stale ci/baseline.json: regenerate it with `ci/gate.sh --write-baseline`"


def _setting(name: str) -> str:
    found = re.search(rf'^{name}="?([^"\n]+)"?$', SCRIPT.read_text(), re.MULTILINE)
    assert found, f"{SCRIPT} sets no {name}"
    return found.group(1)


def test_ci_runs_the_gate_after_the_tests() -> None:
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    tests = next(i for i, line in enumerate(lines) if "python -m pytest -q" in line)
    assert "ci/gate.sh" in lines[tests + 1 :]


@pytest.fixture(scope="module")
def demo_root() -> Path:
    from harness.data.demo import ensure_demo_root
    from harness.registry import get_tasks

    return ensure_demo_root(get_tasks(_setting("TASKS")))


def test_baseline_covers_the_subset_the_script_evaluates(demo_root: Path) -> None:
    from harness.protocol import load_protocol

    baseline = read_baseline(BASELINE)
    tasks, limit = _setting("TASKS").split(","), int(_setting("LIMIT"))
    assert list(baseline.tasks) == tasks, REGENERATE
    assert baseline.info["limit"] == limit and baseline.protocol == "llava15" and baseline.is_demo
    for name in tasks:
        task = get_task(name)
        samples = task.select(task.load(demo_root), load_protocol("llava15").settings_for(task))
        expected = {s.id for s in task.subset(samples, limit)}
        assert {r["id"] for r in baseline.tasks[name].records or []} == expected, f"{name}: {REGENERATE}"
        assert baseline.tasks[name].record.version == task.version, f"{name}: {REGENERATE}"
        assert baseline.tasks[name].record.headline == list(task.headline)
