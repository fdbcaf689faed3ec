"""MME against real published prediction files (skipped when the realdata folder is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.data.readers import read_jsonl
from harness.types import Response
from tasks.mme import MMETask
from tests.helpers.paths import REALDATA

MME = REALDATA / "mme"

# Per-subtask scores of LLaVA-1.5-13B listed in realdata/mme/SOURCE.md (2 decimals).
LLAVA_13B_SUBTASKS = {
    "existence": 185,
    "count": 155,
    "position": 133.33,
    "color": 170,
    "posters": 160.54,
    "celebrity": 152.94,
    "scene": 161.25,
    "landmark": 170.5,
    "artwork": 117.75,
    "OCR": 125,
    "commonsense_reasoning": 127.86,
    "numerical_calculation": 42.5,
    "text_translation": 77.5,
    "code_reasoning": 47.5,
}


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real MME data not found: {path} (set HARNESS_REALDATA)")
    return path


def test_llava_13b_answers_through_converter_and_tool(tmp_path: Path) -> None:
    answers = _need(MME / "answers/llava-v1.5-13b.jsonl")
    (tmp_path / "MME/eval_tool").mkdir(parents=True)
    (tmp_path / "MME/llava_mme.jsonl").symlink_to(_need(MME / "llava_mme.jsonl"))
    (tmp_path / "MME/eval_tool/Your_Results").symlink_to(_need(MME / "eval_tool/Your_Results"))
    task = MMETask()
    samples = task.load(tmp_path)
    assert len(samples) == 2374
    matched = task.match_answers(samples, read_jsonl(answers))
    assert len(matched) == 2374
    result = task.score(samples, {sid: Response(text=text) for sid, text in matched.items()})
    assert result.metrics["perception"].value == pytest.approx(1531.3187, abs=1e-3)
    assert result.metrics["cognition"].value == pytest.approx(295.3571, abs=1e-3)
    assert result.n_missing == 0
    got = {name: round(metric.value, 2) for name, metric in result.breakdowns["subtask"].items()}
    assert got == LLAVA_13B_SUBTASKS


def test_lavin_directory_mode() -> None:
    result = MMETask().score_path(_need(MME / "eval_tool/LaVIN"), None)
    assert result is not None
    assert round(result.metrics["perception"].value, 2) == 963.61
    assert round(result.metrics["cognition"].value, 2) == 249.64


def test_llava_7b_directory_mode_matches_printed_output() -> None:
    result = MMETask().score_path(_need(MME / "eval_tool/answers/llava-v1.5-7b"), None)
    assert result is not None
    assert result.metrics["perception"].value == pytest.approx(1508.6726137691257, abs=1e-9)
    assert result.metrics["cognition"].value == pytest.approx(355.7142857142857, abs=1e-9)


def test_folder_scores_take_the_dataset_ids_so_they_pair_with_answer_files(tmp_path: Path) -> None:
    (tmp_path / "MME/eval_tool").mkdir(parents=True)
    (tmp_path / "MME/llava_mme.jsonl").symlink_to(_need(MME / "llava_mme.jsonl"))
    (tmp_path / "MME/eval_tool/Your_Results").symlink_to(_need(MME / "eval_tool/Your_Results"))
    task = MMETask()
    dataset_ids = {s.id for s in task.load(tmp_path)}
    folder = task.score_path(_need(MME / "eval_tool/answers/llava-v1.5-7b"), tmp_path)
    bare = task.score_path(MME / "eval_tool/answers/llava-v1.5-7b", None)
    assert folder is not None and bare is not None
    ids = [s.sample_id for s in folder.samples]
    assert len(ids) == len(set(ids)) == 2350 and set(ids) <= dataset_ids
    assert not {s.sample_id for s in bare.samples} & dataset_ids  # without the data root: line-number ids
    assert folder.metrics["perception"].value == bare.metrics["perception"].value
