"""Each leaderboard page through Streamlit's AppTest, over a store of real runs (helpers/leaderboard_fixtures.py)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from harness.results.identity import RunIdentity
from harness.results.store import ResultsStore
from tests.helpers.leaderboard_fixtures import SCRIPT_NAME, TRAINING_RUN, BoardStore, open_app
from tests.helpers.paths import REPO as REPO_ROOT
from tests.helpers.paths import TEST_DATA

APP = str(REPO_ROOT / "leaderboard" / "app.py")




def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def board_rows(at: AppTest) -> pd.DataFrame:
    """Every row on the board: the benchmark table and, apart from it, the demo table."""
    frames = [d.value for d in at.dataframe if "rank" in d.value.columns]
    return pd.concat(frames, ignore_index=True)


def codes(at: AppTest) -> list[str]:
    return [c.value for c in at.code]


def test_board_shows_runs_intervals_average_and_paper_rows(board_store: BoardStore,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(monkeypatch, board_store.url)
    assert metrics(at) == {"Runs shown": "7", "Paper rows shown": "8", "Runs in the store": "7"}
    main, demo = at.dataframe[0].value, at.dataframe[1].value
    assert set(main["source"]) == {"real", "paper"} and set(demo["source"]) == {"demo"}  # demo rows apart
    table = board_rows(at)
    assert {"gqa", "gqa 95% CI", "mme", "mme 95% CI", "average", "rank", "subset", "n"} <= set(table.columns)
    by_model = table.set_index("model")
    strong = by_model.loc["scripted-strong"]
    assert strong["source"] == "demo" and strong["gqa 95% CI"].count("–") == 1
    assert strong["average"] == pytest.approx((strong["gqa"] + strong["mme"] / 20) / 2)
    assert by_model.loc["TinyLLaVA-Phi-2-SigLIP-3.1B-repro", "source"] == "real"
    assert by_model.loc["LLaVA-1.5-13B", "source"] == "paper" and by_model.loc["LLaVA-1.5-13B", "mme"] == 1531.3
    assert SCRIPT_NAME in set(table["model"])  # the name is data, shown as it is
    assert strong["subset"] == "--limit 40" and strong["n"] == "40"
    for frame in (main, demo):
        for _, group in frame.groupby("subset"):
            ranked = group[group["average"] > float("-inf")]  # blank cells are sent as -inf (shown as nothing)
            assert list(ranked["average"]) == sorted(ranked["average"], reverse=True)
            assert list(ranked["rank"]) == sorted(ranked["rank"]) and ranked["rank"].iloc[0] == 1


def test_board_filters_change_the_rows(board_store: BoardStore, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(monkeypatch, board_store.url)
    at.text_input(key="board_text").input("checkpoint").run()
    assert metrics(at)["Runs shown"] == "3" and metrics(at)["Paper rows shown"] == "0"
    assert sorted(board_rows(at)["model"]) == ["checkpoint-100", "checkpoint-200", "checkpoint-300"]
    at.text_input(key="board_text").input("").run()
    at.multiselect(key="board_sources").set_value(["real", "paper"]).run()
    at.multiselect(key="board_llm").set_value(["phi"]).run()
    models = set(board_rows(at)["model"])
    assert "TinyLLaVA-Phi-2-SigLIP-3.1B-repro" in models and "TinyLLaVA-3.1B" in models
    assert not any("scripted" in m or "LLaVA-1.5" in m for m in models)
    at.multiselect(key="board_llm").set_value([]).run()
    at.slider[0].set_value((5.0, 13.0)).run()
    assert set(board_rows(at)["model"]) == {"LLaVA-1.5-13B", "LLaVA-1.5-7B"}
    at.slider[0].set_value((0.0, 13.0))
    at.multiselect(key="board_sources").set_value(["real", "demo"])
    at.multiselect(key="board_tasks").set_value(["gqa"]).run()
    table = board_rows(at)
    assert "mme" not in table.columns and list(table["average"]) == list(table["gqa"])


def test_compare_page_shows_deltas_tests_and_changed_samples(board_store: BoardStore,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(monkeypatch, board_store.url, "compare")
    at.selectbox(key="compare_a").set_value(board_store.strong)
    at.selectbox(key="compare_b").set_value(board_store.weak).run()
    assert not at.exception
    assert metrics(at)["Significantly worse"] == "3"  # gqa accuracy, mme perception and cognition
    table = at.dataframe[0].value.set_index(["task", "metric"])
    gqa = table.loc[("gqa", "accuracy")]
    assert gqa["Δ (B − A)"] < 0 and gqa["95% CI high"] < 0 and gqa["verdict"] == "worse"
    assert gqa["test"].startswith("clustered McNemar") and gqa["p"] < 0.05
    at.selectbox(key="compare_task").set_value("gqa").run()
    shown = codes(at)
    assert "purple elephant" in shown  # the weak model's answer, next to the strong one's
    assert any("Answer the question using a single word or phrase." in c for c in shown)
    at.radio(key="compare_direction").set_value("better in B").run()
    assert "purple elephant" not in codes(at)


def test_samples_page_filters_by_outcome(board_store: BoardStore, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(monkeypatch, board_store.url, "samples")
    at.selectbox(key="run").set_value(board_store.strong).run()
    at.selectbox(key="samples_task").set_value("gqa").run()
    assert metrics(at)["error"] == "1" and int(metrics(at)["correct"]) > 0
    at.multiselect(key="samples_status").set_value(["error"]).run()
    assert len(at.dataframe[0].value) == 1 and any("HTTP 500" in c for c in codes(at))
    at.selectbox(key="samples_task").set_value("mme").run()
    at.multiselect(key="samples_status").set_value(["parse failure"]).run()
    assert "It is hard to say." in codes(at)
    at.multiselect(key="samples_status").set_value(["correct"])
    at.text_input(key="samples_text").input("is THERE").run()
    frame = at.dataframe[0].value
    assert len(frame) > 0 and set(frame["status"]) == {"correct"}
    assert all("is there" in c.lower() for c in codes(at) if c.endswith("single word or phrase."))


def test_history_marks_the_regression(board_store: BoardStore, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(monkeypatch, board_store.url, "history")
    at.radio(key="history_group").set_value("training run").run()
    at.selectbox(key="history_training_run").set_value(TRAINING_RUN).run()
    assert metrics(at) == {"Runs": "3", "Regressions": "2", "Sample set": "--limit 40"}
    frame = at.dataframe[0].value
    assert set(frame.loc[frame["regression"], "step"]) == {200}  # gqa and mme drop at step 200, recover at 300
    assert list(frame[frame["task"] == "gqa"]["x"]) == [100.0, 200.0, 300.0]


def test_run_details_show_the_name_as_text(board_store: BoardStore, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(monkeypatch, board_store.url, "run_details")
    at.selectbox(key="run").set_value(board_store.script).run()
    assert SCRIPT_NAME in codes(at)
    tasks = at.dataframe[0].value.set_index("task")
    assert tasks.loc["gqa", "samples"] == 40 and tasks.loc["mme", "parse failures"] >= 1
    result = ResultsStore(board_store.url, readonly=True).get_run(board_store.script)
    assert result is not None and result.model is not None
    identity = [d for d in (json.loads(j.value) for j in at.json) if "model_fingerprint" in d]
    assert identity == [RunIdentity.of(result).model_dump()]
    assert identity[0]["model_fingerprint"] == result.model.fingerprint
    assert set(identity[0]["data_fingerprints"]) == {"gqa", "mme"} and identity[0]["protocol_hash"]


def test_missing_and_old_stores_are_one_line_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_app(monkeypatch, f"sqlite:///{tmp_path / 'none' / 'harness.db'}")
    assert [e.value for e in at.error] == ["The results store cannot be read."]
    assert "no results store at" in codes(at)[0]
    old = tmp_path / "old.db"
    con = sqlite3.connect(old)
    con.executescript((TEST_DATA / "store_v1.sql").read_text())
    con.close()
    at = open_app(monkeypatch, f"sqlite:///{old}")
    assert "upgrade it in place with `python -m harness leaderboard" in codes(at)[0]


def test_error_messages_are_shown_as_text_not_markdown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    crafted = tmp_path / "[store](example.invalid)"
    at = open_app(monkeypatch, f"sqlite:///{crafted / 'harness.db'}")
    assert "[store](example.invalid)" in codes(at)[0]  # the path verbatim, in a preformatted block
    rendered = [e.value for e in at.error] + [m.value for m in at.markdown]
    assert not any("example.invalid" in text for text in rendered)
