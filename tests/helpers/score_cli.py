"""``harness score`` / ``harness run`` through the command line, for the tests that compare data roots with and
without the run-only files (LLaVA's question files)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

# The samples-log fields that scoring decides (the question text and metadata may differ between the loaders).
SCORED_FIELDS = ("id", "target", "response", "parsed", "score", "correct", "parse_failed", "detail")


def harness(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, timeout=300)


def score(task: str, answers: Path, root: Path, out: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``harness score TASK --answers F --data-root ROOT --json --output-dir OUT``: the printed result and the
    scored fields of each line of the samples log it saved, in order."""
    proc = harness("score", task, "--answers", str(answers), "--data-root", str(root), "--json",
                   "--output-dir", str(out))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    log = next(out.glob(f"*/samples/{task}.jsonl"))
    lines = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    return json.loads(proc.stdout), [{k: line[k] for k in SCORED_FIELDS} for line in lines]


def data_fingerprint(out: Path, task: str) -> str:
    """The data fingerprint the run saved under ``out`` recorded for ``task``."""
    results = json.loads(next(out.glob("*/results.json")).read_text(encoding="utf-8"))
    return str(results["tasks"][task]["data_fingerprint"])


def run_error(task: str, root: Path, out: Path) -> str:
    """The one line ``harness run --tasks TASK --data-root ROOT`` prints when it refuses to start (exit 1)."""
    proc = harness("run", "--tasks", task, "--data-root", str(root), "--output-dir", str(out), "--no-progress")
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    return lines[0]


def link_root(root: Path, files: dict[str, Path]) -> Path:
    """A data root of symbolic links: ``{path under the root: the file it points to}``."""
    for rel, target in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).symlink_to(target)
    return root
