"""The board and History after the README's demo: ``harness run --tasks gqa,mme`` (every sample) and the same on
``--limit 24``, in one results folder, through the real app (AppTest), plus a copy of the full run whose GQA
answers were made wrong (a 35-point drop) recorded later under the same model.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from harness.report.plots import Point, history_lines
from harness.results.schema import RunDirectory, load_results, utc_now
from harness.results.store import ResultsStore, default_store_url
from tests.helpers.leaderboard_fixtures import open_app
from tests.helpers.paths import REPO

pytestmark = pytest.mark.slow
APP = str(REPO / "leaderboard" / "app.py")


@dataclass
class DemoStore:
    url: str
    full: str
    subset: str
    dropped: str
    drop: float  # GQA points lost by the dropped copy


def _run(cwd: Path, *args: str) -> str:
    root = cwd / "results"
    before = {p.name for p in root.iterdir()} if root.is_dir() else set()
    proc = subprocess.run([sys.executable, "-m", "harness", "run", "--tasks", "gqa,mme", "--no-progress", *args],
                          capture_output=True, text=True, timeout=600, cwd=cwd)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (new,) = [p.name for p in root.iterdir() if p.name not in before and (p / "results.json").is_file()]
    return new


def _dropped_copy(root: Path, url: str, source: str, run_id: str, n_wrong: int) -> float:
    """A copy of ``source`` recorded now, its first ``n_wrong`` right GQA answers scored wrong; the drop."""
    shutil.copytree(root / source, root / run_id)
    log = root / run_id / "samples" / "gqa.jsonl"
    records = [json.loads(line) for line in log.read_text().splitlines()]
    flipped = 0
    for rec in records:
        if rec.get("score") == 1.0 and flipped < n_wrong:
            rec["score"], rec["correct"] = 0.0, False
            flipped += 1
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    result = load_results(root / run_id).model_copy(deep=True)
    result.run_id, result.created, result.finished = run_id, utc_now(), utc_now()
    metric = result.tasks["gqa"].metrics["accuracy"]
    drop = 100.0 * flipped / len(records)
    metric.value, metric.ci_low, metric.ci_high = metric.value - drop, None, None
    RunDirectory(root, run_id).write_results(result)
    store = ResultsStore(url)
    store.record(result, root / run_id)
    store.close()
    return drop


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> DemoStore:
    cwd = tmp_path_factory.mktemp("demo-board")
    full = _run(cwd)
    subset = _run(cwd, "--limit", "24")
    root = cwd / "results"
    url = default_store_url(root)
    drop = _dropped_copy(root, url, full, "zz-dropped-gqa", 42)
    return DemoStore(url, full, subset, "zz-dropped-gqa", drop)




def blank(value: object) -> bool:
    """An empty cell as the board sends it (a number that shows as nothing) or a blank text."""
    return value == "" or (isinstance(value, float) and math.isinf(value) and value < 0)


def test_board_after_the_demo_ranks_demo_rows_apart_and_subsets_apart(demo_store: DemoStore,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(monkeypatch, demo_store.url, timeout=120)
    assert len(at.dataframe) >= 2
    main, demo = at.dataframe[0].value, at.dataframe[1].value
    assert set(main["source"]) == {"paper"}  # demo rows are not among the published numbers by default
    assert list(main["rank"][:6]) == [1, 2, 3, 4, 5, 6]
    assert set(demo["source"]) == {"demo"} and len(demo) == 3
    rows = demo.set_index("run")
    full, subset = rows.loc[demo_store.full], rows.loc[demo_store.subset]
    # ranks and averages over the demo's tasks (gqa, mme), no "None"
    assert full["rank"] == 1 and full["average"] == pytest.approx((full["gqa"] + full["mme"] / 20) / 2)
    assert rows.loc[demo_store.dropped, "rank"] == 2
    assert full["subset"] == "" and full["n"] == "gqa 120 · mme 56"
    # the --limit run shows its n and is ranked only on its subset
    assert subset["subset"] == "--limit 24" and subset["n"] == "24" and subset["rank"] == 1
    assert list(demo["run"]) == [demo_store.full, demo_store.dropped, demo_store.subset]
    # empty cells are blank: no step, no interval on the copy, no date on paper rows
    assert blank(full["step"]) and blank(rows.loc[demo_store.dropped, "gqa 95% CI"])
    assert all(blank(v) for v in main["date"]) and all(blank(v) for v in main["run"])
    assert not any(v is None or (isinstance(v, float) and math.isnan(v)) for v in demo.to_numpy().ravel())
    captions = [c.value for c in at.caption]
    assert any("demo, every sample: gqa, mme" in c and "demo, --limit 24: gqa, mme" in c for c in captions)

    at.checkbox(key="board_demo_apart").uncheck().run()
    together = at.dataframe[0].value
    assert "demo" in set(together["source"]) and "paper" in set(together["source"])


def test_history_compares_runs_on_the_same_sample_set(demo_store: DemoStore,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(monkeypatch, demo_store.url, "history", timeout=120)
    at.radio(key="history_group").set_value("model").run()
    at.selectbox(key="history_model").set_value("demo").run()
    assert demo_store.drop > 30
    shown = {m.label: m.value for m in at.metric}
    assert shown == {"Runs": "2", "Regressions": "1", "Sample set": "every sample"}
    frame = at.dataframe[0].value
    flagged = frame[frame["regression"]]
    assert list(zip(flagged["task"], flagged["run_id"])) == [("gqa", demo_store.dropped)]
    at.selectbox(key="history_sample_set").set_value("--limit 24").run()
    assert not at.exception
    assert {m.label: m.value for m in at.metric} == {"Runs": "1", "Regressions": "0", "Sample set": "--limit 24"}

    # what `harness compare` says about the same pair
    proc = subprocess.run([sys.executable, "-m", "harness", "compare", demo_store.full, demo_store.dropped,
                           "--store", demo_store.url, "--format", "json"], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    verdicts = {(t["task"], m["metric"]): m["verdict"] for t in json.loads(proc.stdout)["tasks"] for m in t["metrics"]}
    assert verdicts[("gqa", "accuracy")] == "worse" and verdicts[("mme", "perception")] != "worse"


def test_a_lone_point_gets_a_narrow_axis_not_years() -> None:
    when = datetime(2026, 12, 3, 13, 0)
    fig = history_lines([("gqa (accuracy)", [Point(when, 57.5, 48.0, 66.0)])], "run time")
    low, high = fig.axes[0].get_xlim()  # matplotlib dates: days
    assert 0 < high - low <= 2.0
    fig = history_lines([("gqa (accuracy)", [Point(300.0, 57.5)])], "training step")
    low, high = fig.axes[0].get_xlim()
    assert low < 300.0 < high and high - low <= 40.0
