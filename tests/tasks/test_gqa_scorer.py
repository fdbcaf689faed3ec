"""GQA scoring from the official rules (LLaVA's convert_gqa_for_eval.py + GQA eval.py), hand-worked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.errors import DataError
from harness.types import Response
from tasks.gqa import GQATask
from tasks.gqa.scorer import normalize_prediction, steps_number

JSONL = "gqa/llava_gqa_testdev_balanced.jsonl"
QUESTIONS = "gqa/data/testdev_balanced_questions.json"
SUFFIX = "\nAnswer the question using a single word or phrase."


def _question(
    answer: str,
    structural: str = "verify",
    semantic: str = "attr",
    image: str = "n1",
    group: str | None = None,
    program: list[dict[str, Any]] | None = None,
    text: str = "Is it red?",
) -> dict[str, Any]:
    return {
        "question": text,
        "imageId": image,
        "answer": answer,
        "fullAnswer": answer,
        "isBalanced": True,
        "types": {"structural": structural, "semantic": semantic, "detailed": f"{semantic}{structural}"},
        "semantic": program if program is not None else [{"operation": "select", "argument": "x", "dependencies": []}],
        "groups": {"global": group, "local": "l"},
    }


def _write_root(root: Path, questions: dict[str, dict[str, Any]], jsonl_lines: list[str] | None = None) -> Path:
    (root / "gqa/data").mkdir(parents=True)
    (root / QUESTIONS).write_text(json.dumps(questions), encoding="utf-8")
    if jsonl_lines is None:
        jsonl_lines = [
            json.dumps({"question_id": qid, "image": f"{q['imageId']}.jpg", "text": q["question"] + SUFFIX})
            for qid, q in questions.items()
        ]
    (root / JSONL).write_text("\n".join(jsonl_lines) + "\n", encoding="utf-8")
    return root


def _score(tmp_path: Path, questions: dict[str, dict[str, Any]], answers: dict[str, str]):
    task = GQATask()
    samples = task.load(_write_root(tmp_path, questions))
    return samples, task.score(samples, {qid: Response(text=text) for qid, text in answers.items()})


def test_normalize_removes_only_trailing_periods_and_case() -> None:
    assert normalize_prediction("Yes.") == "yes"
    assert normalize_prediction("Yes...") == "yes"
    assert normalize_prediction("yes .") == "yes "
    assert normalize_prediction("yes\n") == "yes\n"
    assert normalize_prediction(" Yes") == " yes"
    assert normalize_prediction("T-shirt!") == "t-shirt!"


def test_rstrip_period_quirk_in_scoring(tmp_path: Path) -> None:
    questions = {str(i): _question("yes", image=f"n{i}") for i in range(4)}
    answers = {"0": "Yes.", "1": "yes .", "2": "yes\n", "3": "YES"}
    _, result = _score(tmp_path, questions, answers)
    correct = {s.sample_id: s.correct for s in result.samples}
    assert correct == {"0": True, "1": False, "2": False, "3": True}
    assert result.metrics["accuracy"].value == pytest.approx(50.0)
    assert result.samples[1].parsed == "yes "
    assert result.samples[0].detail == {"answer": "yes"}


def test_binary_is_every_non_query_type_and_open_is_query(tmp_path: Path) -> None:
    kinds = ["verify", "logical", "choose", "compare", "query", "query"]
    questions = {str(i): _question("red" if k == "choose" else "yes", structural=k) for i, k in enumerate(kinds)}
    # right: verify, choose, query #4; wrong: logical, compare, query #5
    answers = {"0": "yes", "1": "no", "2": "red", "3": "no", "4": "yes", "5": "no"}
    _, result = _score(tmp_path, questions, answers)
    assert result.metrics["binary"].n == 4
    assert result.metrics["binary"].value == pytest.approx(50.0)
    assert result.metrics["open"].n == 2
    assert result.metrics["open"].value == pytest.approx(50.0)
    assert list(result.metrics) == ["accuracy", "binary", "open", "distribution"]
    structural = result.breakdowns["structural"]
    assert sorted(structural) == ["choose", "compare", "logical", "query", "verify"]
    assert structural["choose"].value == pytest.approx(100.0)
    assert structural["compare"].value == pytest.approx(0.0)
    assert structural["query"].n == 2


def test_steps_count_rule() -> None:
    def op(operation: str, argument: str) -> dict[str, Any]:
        return {"operation": operation, "argument": argument, "dependencies": []}

    # "query: name" is the final naming step: not counted.
    assert steps_number([op("select", "dress (1)"), op("relate", "person,wearing,s (2)"), op("query", "name")]) == 2
    # any "exist" substring drops the step (also inside an argument such as "existing").
    assert steps_number([op("select", "cup"), op("exist", "?"), op("filter color", "existing")]) == 1
    # "choose name" only matches an operation spelled "choose name": "choose: name" still counts.
    assert steps_number([op("choose name", "a|b")]) == 0
    assert steps_number([op("choose", "name")]) == 1
    assert steps_number([]) == 0


def test_steps_and_words_breakdowns(tmp_path: Path) -> None:
    three = [{"operation": o, "argument": "x", "dependencies": []} for o in ("select", "relate", "filter")]
    questions = {
        "a": _question("yes", program=three, text="Is the cup on the table?"),
        "b": _question("yes", text="Is it red?"),
    }
    samples, result = _score(tmp_path, questions, {"a": "yes", "b": "no"})
    assert [s.metadata["steps"] for s in samples] == [3, 1]
    assert [s.metadata["words"] for s in samples] == [6, 3]
    assert list(result.breakdowns["steps"]) == ["1", "3"]
    assert result.breakdowns["steps"]["3"].value == pytest.approx(100.0)
    assert result.breakdowns["words"]["3"].value == pytest.approx(0.0)


def test_distribution_two_groups(tmp_path: Path) -> None:
    # Group A: gold yes, yes, no; predicted yes, no, no.
    #   e(yes)=2, o(yes)=1 -> (1-2)^2/2 = 0.5; e(no)=1, o(no)=2 -> 1; score 1.5, weight 3.
    # Group B: gold red, blue; predicted red, red.
    #   e(red)=1, o(red)=2 -> 1; e(blue)=1, o(blue)=0 -> 1; score 2, weight 2.
    # (1.5*3 + 2*2) / (3 + 2) = 8.5 / 5 = 1.7; reported /100 -> 0.017. The group-less question is ignored.
    questions = {
        "1": _question("yes", group="A"),
        "2": _question("yes", group="A"),
        "3": _question("no", group="A"),
        "4": _question("red", group="B", structural="query"),
        "5": _question("blue", group="B", structural="query"),
        "6": _question("green", group=None, structural="query"),
    }
    answers = {"1": "yes", "2": "no", "3": "no", "4": "red", "5": "red", "6": "purple"}
    _, result = _score(tmp_path, questions, answers)
    dist = result.metrics["distribution"]
    assert dist.value == pytest.approx(0.017)
    assert dist.higher_is_better is False
    assert dist.n == 5


def test_distribution_without_groups_is_zero_with_note(tmp_path: Path) -> None:
    _, result = _score(tmp_path, {"1": _question("yes")}, {"1": "yes"})
    assert result.metrics["distribution"].value == 0.0
    assert any("global group" in note for note in result.notes)


def test_missing_and_error_answers_counted(tmp_path: Path) -> None:
    questions = {str(i): _question("yes", image=f"n{i}") for i in range(4)}
    task = GQATask()
    samples = task.load(_write_root(tmp_path, questions))
    responses = {"0": Response(text="yes"), "1": Response(text="", error="unreadable image")}
    result = task.score(samples, responses)
    assert result.n_missing == 2
    assert result.n_errors == 1
    assert result.n_samples == 4
    assert result.metrics["accuracy"].value == pytest.approx(25.0)
    assert [s.correct for s in result.samples] == [True, False, False, False]
    assert any("2 of 4" in note for note in result.notes)


def test_standard_error_clusters_by_image(tmp_path: Path) -> None:
    # Two images with two questions each; image n0 all right, n1 all wrong.
    # Cluster residual sums: +1, -1 -> sqrt(2/1 * 2) / 4 = 0.5 -> 50 points.
    questions = {str(i): _question("yes", image=f"n{i // 2}") for i in range(4)}
    _, result = _score(tmp_path, questions, {"0": "yes", "1": "yes", "2": "no", "3": "no"})
    assert result.metrics["accuracy"].stderr == pytest.approx(50.0)


def test_load_builds_samples_and_requests(tmp_path: Path) -> None:
    task = GQATask()
    samples = task.load(_write_root(tmp_path, {"201": _question("yes", image="n42", group="g")}))
    (sample,) = samples
    assert sample.id == "201"
    assert sample.target == "yes"
    assert sample.images[0].path == str(tmp_path / "gqa/data/images/n42.jpg")
    assert sample.metadata["imageId"] == "n42"
    assert sample.metadata["global_group"] == "g"
    request = task.build_request(sample, {})
    assert request.prompt == "<image>\nIs it red?" + SUFFIX
    assert request.generation.max_new_tokens == 128
    assert task.build_request(sample, {"max_new_tokens": 16}).generation.max_new_tokens == 16


def test_malformed_jsonl_line_names_file_and_line(tmp_path: Path) -> None:
    lines = [json.dumps({"question_id": "1", "image": "n1.jpg", "text": "Q"}), '{"question_id": "2", "image": ']
    _write_root(tmp_path, {"1": _question("yes"), "2": _question("no")}, lines)
    with pytest.raises(DataError, match=r"llava_gqa_testdev_balanced\.jsonl:2"):
        GQATask().load(tmp_path)


def test_missing_field_names_file_and_line(tmp_path: Path) -> None:
    lines = [json.dumps({"question_id": "1", "image": "n1.jpg"})]
    _write_root(tmp_path, {"1": _question("yes")}, lines)
    with pytest.raises(DataError, match=r"jsonl:1: missing field 'text'"):
        GQATask().load(tmp_path)


def test_unknown_question_id_names_both_files(tmp_path: Path) -> None:
    lines = [json.dumps({"question_id": "999", "image": "n1.jpg", "text": "Q"})]
    _write_root(tmp_path, {"1": _question("yes")}, lines)
    with pytest.raises(DataError, match=r"jsonl:1: question_id 999 .*testdev_balanced_questions\.json"):
        GQATask().load(tmp_path)


def test_load_for_scoring_gives_the_samples_of_the_question_file(tmp_path: Path) -> None:
    """The official eval.py reads only the questions file: without LLaVA's, the same ids, targets and metadata."""
    questions = {
        "7": _question("no", structural="query", image="n3", group="g1", text="What is it?"),
        "2": _question("yes", image="n1", group="g1"),
        "5": _question("red", structural="choose", semantic="rel", image="n1", group=None),
    }
    task = GQATask()
    samples = task.load(_write_root(tmp_path, questions))
    (tmp_path / JSONL).unlink()
    scoring = task.load_for_scoring(tmp_path)
    view = [(s.id, s.target, s.images, s.metadata) for s in samples]
    assert [(s.id, s.target, s.images, s.metadata) for s in scoring] == view
    assert [s.question for s in scoring] == ["What is it?", "Is it red?", "Is it red?"]  # no LLaVA suffix
    responses = {"7": Response(text="No."), "5": Response(text="red")}  # "2" unanswered
    for settings in (None, {"scorer": "lmms-eval"}):
        assert task.score(scoring, responses, settings) == task.score(samples, responses, settings)
