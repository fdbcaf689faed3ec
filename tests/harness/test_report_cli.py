"""``python -m harness report`` and the ``leaderboard`` command's flags, through the real CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from harness.results.schema import load_results
from tests.helpers.leaderboard_fixtures import SCRIPT_NAME, BoardStore


def harness(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, timeout=300,
                          cwd=cwd)  # fmt: skip


def test_report_against_a_baseline(board_store: BoardStore, tmp_path: Path) -> None:
    out = tmp_path / "report"
    weak_dir = board_store.root / board_store.weak
    proc = harness("report", str(weak_dir), "--vs", board_store.strong, "--store", board_store.url,
                   "--output", str(out))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"wrote {out / 'report.md'} and {out / 'headline.png'}"
    text = (out / "report.md").read_text()
    # The expected numbers are the two runs' own recorded accuracies (the fixture's scripted answers).
    strong = load_results(board_store.root / board_store.strong).tasks["gqa"].metrics["accuracy"].value
    weak = load_results(weak_dir).tasks["gqa"].metrics["accuracy"].value
    assert strong - weak > 20
    assert "## Headline metrics" in text and f"| gqa | accuracy | {weak:.2f} | [" in text
    assert "### Paired comparison (harness compare)" in text
    rows = [line for line in text.splitlines() if line.startswith(f"| gqa | accuracy | {strong:.2f} | {weak:.2f} |")]
    assert len(rows) == 1, text
    assert f"| {weak - strong:.2f} |" in rows[0] and "McNemar" in rows[0] and "**worse**" in rows[0]
    assert "samples changed score" in text and "![headline metrics with 95% intervals](headline.png)" in text
    assert (out / "headline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_escapes_run_text(board_store: BoardStore, tmp_path: Path) -> None:
    proc = harness("report", board_store.script, "--store", board_store.url, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "reports" / board_store.script / "report.md").read_text()
    assert SCRIPT_NAME not in text and "# Report: &lt;script&gt;alert" in text
    assert "mme | cognition" in text and "(demo: synthetic data" in text


def test_report_and_leaderboard_errors_are_one_line(board_store: BoardStore, tmp_path: Path) -> None:
    proc = harness("report", "no-such-run", "--store", board_store.url)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("error: RUN: 'no-such-run' is not a run directory")
    proc = harness("report", board_store.strong, "--store", board_store.url, "--tasks", "gqa,vqav2",
                   "--output", str(tmp_path / "r"))  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.startswith("error: --tasks: vqav2 not in")
    proc = harness("leaderboard", "--port", "70000")
    assert proc.returncode == 2 and proc.stderr == "error: --port must be from 0 to 65535; got 70000\n"
