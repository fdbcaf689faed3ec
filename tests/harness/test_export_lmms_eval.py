"""``harness export lmms-eval RUN --output DIR``: our run in lmms-eval's layout, read back by the importer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli import main
from harness.results.schema import load_results


def run_dir_in(out: Path) -> Path:
    (run_dir,) = [p for p in out.iterdir() if (p / "results.json").is_file()]
    return run_dir


def answers(run_dir: Path, task: str) -> dict[str, tuple[str, float | None]]:
    lines = (run_dir / "samples" / f"{task}.jsonl").read_text(encoding="utf-8").splitlines()
    return {r["id"]: (r["response"]["text"], r["score"]) for r in map(json.loads, lines)}


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("export")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARNESS_CACHE_DIR", str(base / "cache"))
        code = main(["run", "--tasks", "gqa,mme", "--limit", "10", "--output-dir", str(base / "runs"),
                     "--no-progress"])  # fmt: skip
    assert code == 0
    return run_dir_in(base / "runs")


def test_exported_run_has_lmms_eval_layout(demo_run: Path, tmp_path: Path, capsys) -> None:
    assert main(["export", "lmms-eval", str(demo_run), "--output", str(tmp_path / "lmms")]) == 0
    assert "wrote" in capsys.readouterr().out
    (folder,) = list((tmp_path / "lmms").iterdir())
    assert folder.name == "tinyllava__demo"  # lmms-eval's sanitised model_args model=
    (results,) = list(folder.glob("*_results.json"))
    doc = json.loads(results.read_text())
    for key in ("results", "configs", "versions", "n-shot", "higher_is_better", "n-samples", "config", "date",
                "group_subtasks", "task_hashes", "model_name", "model_name_sanitized"):  # fmt: skip
        assert key in doc, key
    ours = load_results(demo_run)
    gqa = doc["results"]["gqa"]
    assert gqa["exact_match,none"] == pytest.approx(ours.tasks["gqa"].metrics["accuracy"].value / 100)
    assert doc["results"]["mme"]["mme_perception_score,none"] == ours.tasks["mme"].metrics["perception"].value
    assert doc["config"]["model"] == "tinyllava_harness" and doc["config"]["model_args"] == "model=tinyllava:demo"
    assert doc["n-samples"]["gqa"] == {"original": 10, "effective": 10}
    date = doc["date"]
    assert results.name == f"{date}_results.json"
    lines = [json.loads(x) for x in (folder / f"{date}_samples_gqa.jsonl").read_text().splitlines()]
    assert len(lines) == 10 and [line["doc_id"] for line in lines] == list(range(10))
    first = lines[0]
    assert {"doc", "target", "arguments", "resps", "filtered_resps", "doc_hash", "prompt_hash", "target_hash",
            "exact_match"} <= set(first)  # fmt: skip
    assert isinstance(first["resps"][0], list) and isinstance(first["filtered_resps"][0], str)


def test_round_trip_export_then_import_gives_the_same_metrics_and_answers(
    demo_run: Path, tmp_path: Path, capsys
) -> None:
    assert main(["export", "lmms-eval", str(demo_run / "results.json"), "--output", str(tmp_path / "lmms")]) == 0
    assert main(["import", "lmms-eval", str(tmp_path / "lmms"), "--output-dir", str(tmp_path / "back")]) == 0
    capsys.readouterr()
    ours, back = load_results(demo_run), load_results(run_dir_in(tmp_path / "back"))
    assert set(back.tasks) == set(ours.tasks)
    for name, record in ours.tasks.items():
        again = back.tasks[name]
        assert again.headline == record.headline and again.n_samples == record.n_samples
        assert set(again.metrics) == set(record.metrics)
        for metric, value in record.metrics.items():
            assert again.metrics[metric].value == pytest.approx(value.value), (name, metric)
            if value.stderr is not None:
                assert again.metrics[metric].stderr == pytest.approx(value.stderr)
            assert again.metrics[metric].higher_is_better == value.higher_is_better
        assert answers(run_dir_in(tmp_path / "back"), name) == answers(demo_run, name)
    # and exporting the imported run again gives the same lmms-eval results
    assert main(["export", "lmms-eval", str(run_dir_in(tmp_path / "back")), "--output", str(tmp_path / "again")]) == 0
    (first,) = (tmp_path / "lmms").rglob("*_results.json")
    (second,) = (tmp_path / "again").rglob("*_results.json")
    assert json.loads(first.read_text())["results"] == json.loads(second.read_text())["results"]


def test_export_of_a_task_still_needs_answers_and_lmms_eval_needs_a_run(tmp_path: Path, capsys) -> None:
    assert main(["export", "vqav2", "--output", str(tmp_path / "x.json")]) == 2
    assert "--answers" in capsys.readouterr().err
    assert main(["export", "lmms-eval", "--output", str(tmp_path / "out")]) == 2
    assert "give the run" in capsys.readouterr().err
    assert main(["export", "lmms-eval", str(tmp_path / "nowhere"), "--output", str(tmp_path / "out"),
                 "--store", f"sqlite:///{tmp_path / 'h.db'}"]) == 2  # fmt: skip
    assert "nowhere" in capsys.readouterr().err
