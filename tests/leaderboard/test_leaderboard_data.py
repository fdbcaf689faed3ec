"""The leaderboard's plain-Python parts: board frames, paper rows, sample outcomes, speed, safety."""

from __future__ import annotations

import io
import json
import re
import time
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from harness.errors import DataError
from harness.registry import task_names
from harness.results.provenance import Environment, GitInfo
from harness.results.schema import DataInfo, RunResult, RunSpec, TaskRecord, utc_now
from harness.results.store import ResultsStore
from harness.types import Metric
from leaderboard import samples as log
from leaderboard.data import BoardFilters, board_csv, board_frame, headline_frame, open_store, runs_frame
from leaderboard.paper import PaperModel, load_paper_models, paper_models
from tests.helpers.paths import REPO as REPO_ROOT

ROOT = REPO_ROOT


def _runs(rows: list[dict]) -> pd.DataFrame:
    base = {"model_spec": "", "llm": "", "vision_tower": "", "n_parameters": None, "protocol": "llava15",
            "source": "real", "created": pd.Timestamp("2026-01-01"), "finished": None, "status": "complete",
            "command": "run", "step": None, "training_run": "", "git_branch": "", "git_commit": "",
            "git_dirty": None, "run_dir": "", "data_root": ""}  # fmt: skip
    return pd.DataFrame([{**base, **r} for r in rows])


def _heads(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(
        [(r, t, m, v, lo, hi, None, 10, "") for r, t, m, v, lo, hi in rows],
        columns=["run_id", "task", "metric", "value", "ci_low", "ci_high", "stderr", "n", "method"],
    )


def test_average_puts_mme_on_a_100_scale_and_ranks_only_complete_rows() -> None:
    runs = _runs([{"run_id": "a", "model": "A"}, {"run_id": "b", "model": "B"}, {"run_id": "c", "model": "C"}])
    heads = _heads([
        ("a", "gqa", "accuracy", 60.0, 58.0, 62.0), ("a", "mme", "perception", 1500.0, 1450.0, 1550.0),
        ("b", "gqa", "accuracy", 70.0, 68.0, 72.0), ("b", "mme", "perception", 1000.0, None, None),
        ("c", "gqa", "accuracy", 90.0, None, None),
    ])  # fmt: skip
    board = board_frame(runs, heads, BoardFilters())
    table = board.table.set_index("model")
    assert board.tasks == ["gqa", "mme"] and board.metrics == {"gqa": "accuracy", "mme": "perception"}
    assert table.loc["A", "average"] == pytest.approx((60.0 + 75.0) / 2)  # 1500 of 2000 is 75
    assert table.loc["B", "average"] == pytest.approx((70.0 + 50.0) / 2)
    assert pd.isna(table.loc["C", "average"]) and pd.isna(table.loc["C", "rank"])  # no MME: no average
    assert list(board.table["model"]) == ["A", "B", "C"] and list(board.table["rank"][:2]) == [1, 2]
    only_gqa = board_frame(runs, heads, BoardFilters(tasks=("gqa",))).table
    assert list(only_gqa["model"]) == ["C", "B", "A"] and list(only_gqa["average"]) == [90.0, 70.0, 60.0]


def test_filters_and_paper_rows() -> None:
    runs = _runs([
        {"run_id": "a", "model": "phi-run", "llm": "phi", "vision_tower": "siglip", "n_parameters": 3_100_000_000},
        {"run_id": "b", "model": "demo-run", "source": "demo", "created": pd.Timestamp("2026-03-01")},
        {"run_id": "c", "model": "half-done", "status": "running"},
    ])  # fmt: skip
    heads = _heads([(r, "gqa", "accuracy", 50.0, 45.0, 55.0) for r in ("a", "b", "c")])
    paper = (PaperModel("Paper-Phi", "phi", "siglip", 3_100_000_000, "llava15", "a README", {"gqa": 62.0}),
             PaperModel("Paper-Llama", "llama", "clip", 7_000_000_000, "llava15", "a paper", {"gqa": 61.0}))

    def models(**kw: object) -> list[str]:
        return sorted(board_frame(runs, heads, BoardFilters(**kw), paper).table["model"])  # type: ignore[arg-type]

    assert models() == ["demo-run", "phi-run"]
    assert models(sources=("real", "demo", "paper")) == ["Paper-Llama", "Paper-Phi", "demo-run", "phi-run"]
    assert models(sources=("real", "demo", "paper"), llms=("phi",)) == ["Paper-Phi", "phi-run"]
    assert models(sources=("real", "demo", "paper"), size_b=(5.0, 8.0)) == ["Paper-Llama"]
    assert models(sources=("demo",)) == ["demo-run"]
    assert models(dates=(date(2026, 2, 1), date(2026, 3, 31))) == ["demo-run"]
    assert models(text="PHI") == ["phi-run"]
    assert models(complete_only=False) == ["demo-run", "half-done", "phi-run"]
    table = board_frame(runs, heads, BoardFilters(sources=("real", "paper")), paper).table.set_index("model")
    assert table.loc["Paper-Phi", "source"] == "paper" and table.loc["Paper-Phi", "reference"] == "a README"
    assert pd.isna(table.loc["Paper-Phi", "gqa ci_low"]) and table.loc["phi-run", "gqa ci_low"] == 45.0


def test_csv_keeps_intervals_and_paper_sources() -> None:
    runs = _runs([{"run_id": "a", "model": "=cmd|' /C calc'!A0"}])
    heads = _heads([("a", "gqa", "accuracy", 50.0, 45.0, 55.0)])
    paper = (PaperModel("P", "phi", "siglip", None, "llava15", "README of X", {"gqa": 62.0}),)
    board = board_frame(runs, heads, BoardFilters(sources=("real", "paper")), paper)
    frame = pd.read_csv(io.BytesIO(board_csv(board)))
    assert {"gqa", "gqa ci_low", "gqa ci_high", "reference", "rank", "average"} <= set(frame.columns)
    row = frame.set_index("run_id").loc["a"]
    assert (row["gqa"], row["gqa ci_low"], row["gqa ci_high"]) == (50.0, 45.0, 55.0)
    assert frame.set_index("model").loc["P", "reference"] == "README of X"
    assert row["model"] == "'=cmd|' /C calc'!A0"  # a formula-looking name is written as text


def test_paper_numbers_name_real_tasks_and_sources() -> None:
    models = paper_models()
    known = set(task_names())
    assert len(models) >= 5 and {"TinyLLaVA-3.1B", "LLaVA-1.5-13B"} <= {m.name for m in models}
    for m in models:
        assert m.source and set(m.scores) <= known, m.name
    llava13 = next(m for m in models if m.name == "LLaVA-1.5-13B")
    assert llava13.scores["mme"] == 1531.3 and llava13.scores["scienceqa"] == 71.6  # realdata SOURCE.md


def test_the_issue_20_tasks_are_board_columns_with_the_published_numbers() -> None:
    """POPE, MMMU, VizWiz and MMBench-CN columns hold the TinyLLaVA Factory and LLaVA-1.5 (MODEL_ZOO) numbers,
    in LLaVA-1.5's table order."""
    runs, heads = _runs([{"run_id": "a", "model": "not shown"}]), _heads([("a", "gqa", "accuracy", 50.0, 45.0, 55.0)])
    board = board_frame(runs, heads, BoardFilters(sources=("paper",)), paper_models()).table
    table = board.set_index("model")
    expected = {
        ("TinyLLaVA-Phi-2-SigLIP-3.1B (share recipe)", "pope"): 87.2,
        ("TinyLLaVA-Phi-2-SigLIP-3.1B (share recipe)", "mmmu"): 38.4,
        ("TinyLLaVA Factory SigLIP + Phi-2 (base recipe)", "mmmu"): 38.2,
        ("LLaVA-1.5-13B", "vizwiz"): 53.6, ("LLaVA-1.5-13B", "pope"): 85.9, ("LLaVA-1.5-13B", "mmbench_cn"): 63.6,
        ("LLaVA-1.5-7B", "vizwiz"): 50.0, ("LLaVA-1.5-7B", "mmbench_cn"): 58.3, ("LLaVA-1.5-7B", "pope"): 85.9,
    }  # fmt: skip
    for (model, task), value in expected.items():
        assert table.loc[model, task] == value, (model, task)
    columns = [c for c in board.columns if c in task_names()]
    assert columns.index("vizwiz") < columns.index("pope") < columns.index("mmbench_cn") < columns.index("mmmu")


def test_a_malformed_paper_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "paper.json"
    bad.write_text(json.dumps({"models": [{"name": "x"}]}))
    with pytest.raises(DataError, match=r"paper\.json: not a paper numbers file"):
        load_paper_models(bad)


def test_sample_outcomes_and_judge_replies() -> None:
    assert log.status({"response": {"error": "HTTP 500"}, "correct": False}) == "error"
    assert log.status({"response": {"text": "?"}, "parse_failed": True, "correct": False}) == "parse failure"
    assert log.status({"response": {"text": "yes"}, "correct": True}) == "correct"
    assert log.status({"response": {"text": "no"}, "correct": False}) == "wrong"
    assert log.status({"response": {"text": "a"}, "score": 0.4}) == "scored"
    assert log.status({"response": None}) == "unscored"
    judged = {"detail": {"content": ["0.5", "0.4"], "reviews": ["8 7\nfine"]}}
    assert log.judge_replies(judged) == ["0.5", "0.4", "8 7\nfine"]
    recs = [{"id": "1", "response": {"text": "cat"}, "correct": True}, {"id": "2", "response": {"text": "dog"}}]
    assert [r["id"] for r in log.select(recs, ["correct"])] == ["1"]
    assert [r["id"] for r in log.select(recs, [], "DOG")] == ["2"]


def _big_result(i: int, tasks: list[str]) -> RunResult:
    records = {}
    for t in tasks:
        metrics = {"accuracy": Metric(value=50.0 + i % 7, stderr=1.0, ci_low=48.0, ci_high=52.0, n=1000)}
        breakdowns = {"category": {f"c{k}": Metric(value=float(k), n=50) for k in range(6)}}
        records[t] = TaskRecord(task=t, version="1", n_samples=1000, headline=["accuracy"], metrics=metrics,
                                breakdowns=breakdowns)  # fmt: skip
    return RunResult(
        run_id=f"run-{i:03d}", status="complete", created=utc_now(), spec=RunSpec(command="run", tasks=tasks),
        data=DataInfo(root="/data"), git=GitInfo(), environment=Environment(python="3", platform="x", packages={}),
        tasks=records,
    )


def test_a_partial_run_in_the_store_is_not_on_the_board(store_url: str, tmp_path: Path) -> None:
    """A ``run --shard`` part is stored with status partial; only its merge (complete) is a result."""
    store = ResultsStore(store_url)
    partial = _big_result(1, ["gqa"]).model_copy(update={"run_id": "shard-0-of-2", "status": "partial"})
    store.record(partial, tmp_path / partial.run_id)
    store.record(_big_result(2, ["gqa"]), tmp_path / "run-002")
    store.close()
    reader = open_store(store_url)
    runs, heads = runs_frame(reader), headline_frame(reader)
    reader.close()
    assert set(runs["run_id"]) == {"shard-0-of-2", "run-002"} and set(heads["run_id"]) == set(runs["run_id"])
    assert list(board_frame(runs, heads, BoardFilters()).table["run_id"]) == ["run-002"]
    assert set(board_frame(runs, heads, BoardFilters(complete_only=False)).table["run_id"]) == set(runs["run_id"])


def test_board_query_is_fast_on_200_runs_of_8_tasks(store_url: str, tmp_path: Path) -> None:
    tasks = ["vqav2_val", "gqa", "textvqa", "scienceqa", "mme", "mmbench", "mmvet", "llava_bench"]
    store = ResultsStore(store_url)
    for i in range(200):
        store.record(_big_result(i, tasks), tmp_path / f"run-{i:03d}")
    store.close()
    reader = open_store(store_url)
    start = time.perf_counter()
    runs, heads = runs_frame(reader), headline_frame(reader)
    board = board_frame(runs, heads, BoardFilters(), paper_models())
    elapsed = time.perf_counter() - start
    assert len(board.table) == 200 and len(heads) == 1600 and board.tasks == tasks
    print(f"board query on 200 runs x 8 tasks: {elapsed:.3f} s")
    assert elapsed < 1.0, f"board query took {elapsed:.2f} s"
    reader.close()


def test_no_stored_text_can_become_html() -> None:
    """The leaderboard never allows HTML, and never hands text to markdown renderers it cannot control."""
    sources = {p: p.read_text() for p in (ROOT / "leaderboard").rglob("*.py")}
    assert sources, "no leaderboard sources found"
    for path, text in sources.items():
        assert "unsafe_allow_html" not in text, path
        assert not re.search(r"\bst\.(markdown|write|html)\(", text), f"{path}: use st.text / st.code / st.dataframe"
        assert "components.html" not in text and "components.v1" not in text, path
