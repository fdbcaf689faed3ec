"""A large answers file is parsed by a forked child while the samples load (``harness/run/answer_columns.py``):
the same columns, the same scores and notes, and the same errors as reading it in line."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from harness.data.readers import iter_jsonl
from harness.errors import DataError
from harness.registry import get_task
from harness.run import answer_columns
from harness.run.answer_columns import READ_AHEAD_BYTES, llava_columns, read_ahead
from harness.run.score_answers import ScoreOptions, read_answers, result_json, score_answers


def _gqa_answers(root: Path, path: Path, min_bytes: int = READ_AHEAD_BYTES) -> None:
    """Answers to every demo GQA question (some wrong, one a number, one a list), then lines that replace an
    earlier answer (not the two odd ones) or answer no question, until the file holds ``min_bytes``."""
    rng = random.Random(3)
    questions = json.loads((root / "gqa/data/testdev_balanced_questions.json").read_text())
    lines = []
    for qid, q in questions.items():
        text: object = q["answer"] if rng.random() < 0.7 else rng.choice(["zebra", "Yes.", " no "])
        lines.append({"question_id": qid, "prompt": q["question"], "text": text, "model_id": "big-model"})
    lines[3]["text"], lines[5]["text"] = 7, ["a"]
    ids = list(questions)
    size = sum(len(json.dumps(line)) + 1 for line in lines)
    while size < min_bytes:
        extra = {"question_id": rng.choice([*ids[6:], f"unknown-{len(lines)}"]), "prompt": "p" * 60, "text": "yes"}
        lines.append(extra)
        size += len(json.dumps(extra)) + 1
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


@pytest.fixture(scope="module")
def gqa_root() -> Path:
    from harness.data.demo import ensure_demo_root

    return ensure_demo_root([get_task("gqa")])


def test_the_child_sends_the_columns_read_in_line(gqa_root: Path, tmp_path: Path) -> None:
    path = tmp_path / "answers.jsonl"
    _gqa_answers(gqa_root, path)
    with read_ahead(path) as ahead:
        got = ahead.columns()
    expected = llava_columns(path, list(iter_jsonl(path)))
    assert got is not None and got.lines is None  # parsed by the child, which sends no whole lines
    assert (got.first, got.question_ids, got.texts, got.bad) == (
        expected.first, expected.question_ids, expected.texts, expected.bad)  # fmt: skip
    assert len(got.bad) == 2 and len(got.texts) > 5000


def test_a_large_file_scores_as_it_does_read_in_line(
    gqa_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "answers.jsonl"
    _gqa_answers(gqa_root, path)
    options = ScoreOptions("gqa", str(path), str(gqa_root))
    forks = []
    real_fork = answer_columns.os.fork
    monkeypatch.setattr(answer_columns.os, "fork", lambda: forks.append(1) or real_fork())
    ahead = score_answers(options)
    monkeypatch.setattr(answer_columns, "READ_AHEAD_BYTES", path.stat().st_size + 1)
    in_line = score_answers(options)
    assert forks == [1]  # the first score read the file in a child, the second did not
    assert result_json(ahead.result) == result_json(in_line.result)
    assert ahead.responses == in_line.responses and ahead.model_label == in_line.model_label == "big-model"
    notes = " ".join(ahead.result.notes)
    assert "duplicate answer line(s); the later line was used" in notes and "match no question" in notes
    assert ahead.result.n_errors == 2


def test_a_line_at_fault_is_named_as_it_is_read_in_line(gqa_root: Path, tmp_path: Path) -> None:
    path = tmp_path / "answers.jsonl"
    _gqa_answers(gqa_root, path)
    lines = path.read_text().splitlines(keepends=True)
    lines[2000] = json.dumps({"question_id": "x", "prompt": "no text"}) + "\n"
    path.write_text("".join(lines))
    samples = get_task("gqa").load_for_scoring(gqa_root)
    with read_ahead(path) as ahead:
        assert ahead.columns() is None  # the child sends nothing; the file is read again here
    with pytest.raises(DataError, match=r"answers\.jsonl:2001: missing field 'text'"):
        read_answers(path, get_task("gqa"), samples)
