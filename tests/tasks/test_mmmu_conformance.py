"""MMMU against LLaVA-1.5-13B's published outputs (skipped when the realdata folder is absent).

``realdata/mmmu`` (see its SOURCE.md) holds the model's raw responses per subject, its parsed
predictions (``total_val_output.json``), MMMU's ground truth and ``official_results.txt``: the table
MMMU's ``main_parse_and_eval.py`` + ``print_results.py`` (MMMU-Benchmark/MMMU @ bb0b95a) print for them,
Overall 0.367 over 900 questions. Every answers format must give that table, to the digit.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from harness.types import Response, TaskResult
from tasks.mmmu import ANNS, ANSWER_DICT, MMMUTask
from tasks.mmmu.subjects import SUBJECTS
from tests.helpers import score_cli
from tests.helpers.paths import REALDATA

MMMU = REALDATA / "mmmu"
TASK = MMMUTask()
ROW = re.compile(r"^\|\s*(.+?)\s*\|\s*(\d+)\s*\|\s*([\d.]+)\s*\|$")


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real MMMU data not found: {path} (set HARNESS_REALDATA)")
    return path


def official_table() -> dict[str, tuple[int, float]]:
    """``official_results.txt``: name -> (questions, accuracy rounded to 3 decimals)."""
    rows = {}
    for line in need(MMMU / "official_results.txt").read_text().splitlines():
        match = ROW.match(line.strip())
        if match:
            rows[match.group(1)] = (int(match.group(2)), float(match.group(3)))
    return rows


def our_table(result: TaskResult) -> dict[str, tuple[int, float]]:
    """Our result in the official table's names and rounding."""
    rows = {f"Overall-{name}": m for name, m in result.breakdowns["discipline"].items()}
    rows.update(result.breakdowns["subject"])
    rows["Overall"] = result.metrics["accuracy"]
    return {name: (m.n, round(m.value / 100, 3)) for name, m in rows.items()}


def outputs() -> list[dict[str, Any]]:
    """Every item of the per-subject output.json files, in MMMU's subject order."""
    items = []
    for subject in SUBJECTS:
        items += json.loads(need(MMMU / "llava1.5_13b" / subject / "output.json").read_text())
    return items


def scoring_root(tmp: Path) -> Path:
    """A data root with MMMU's answer file and a question file made of the outputs' options."""
    (tmp / "mmmu").mkdir(parents=True)
    (tmp / ANSWER_DICT).symlink_to(need(MMMU / "answer_dict_val.json"))
    entries = [{k: item[k] for k in ("id", "question_type", "all_choices", "index2ans") if k in item} | {"prompt": ""}
               for item in outputs()]  # fmt: skip
    (tmp / ANNS).write_text(json.dumps(entries), encoding="utf-8")
    return tmp


def test_output_folder_reproduces_the_official_table() -> None:
    result = TASK.score_path(need(MMMU / "llava1.5_13b"), None)
    assert result is not None
    assert our_table(result) == official_table()
    assert result.metrics["accuracy"].value == pytest.approx(100 * 330 / 900)


def test_parsed_predictions_reproduce_the_official_table(tmp_path: Path) -> None:
    """``total_val_output.json`` through main_eval_only.py's reading (SOURCE.md: the same figures)."""
    result = TASK.score_path(need(MMMU / "total_val_output.json"), scoring_root(tmp_path))
    assert result is not None
    assert our_table(result) == official_table()


def test_raw_responses_in_an_answers_file_reproduce_the_official_table(tmp_path: Path) -> None:
    """The raw responses joined to the data root's samples: the random letters follow the same order."""
    samples = TASK.load(scoring_root(tmp_path))
    result = TASK.score(samples, {item["id"]: Response(text=item["response"]) for item in outputs()})
    assert our_table(result) == official_table()
    assert sum(s.parse_failed for s in result.samples) == 2  # the two answers that name no option


def test_tinyllava_style_answers_reproduce_the_official_table(tmp_path: Path) -> None:
    """Parsed letters as TinyLLaVA's answers JSONL holds them: parsed again, they stay the same."""
    samples = TASK.load(scoring_root(tmp_path))
    predictions = json.loads(need(MMMU / "total_val_output.json").read_text())
    result = TASK.score(samples, {sid: Response(text=text) for sid, text in predictions.items()})
    assert our_table(result) == official_table()


def test_harness_score_command_on_the_output_folder(tmp_path: Path) -> None:
    proc = score_cli.harness("score", "mmmu", "--answers", str(need(MMMU / "llava1.5_13b")), "--json")
    assert proc.returncode == 0, proc.stderr
    assert round(json.loads(proc.stdout)["scores"]["accuracy"] / 100, 3) == official_table()["Overall"][1] == 0.367
