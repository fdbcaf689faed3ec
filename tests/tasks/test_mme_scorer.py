"""MME scoring from the official rules (LLaVA's convert_answer_to_mme.py + eval_tool calculation.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from harness.errors import DataError, UsageError
from harness.protocol import load_protocol
from harness.types import Response, Sample
from tasks.common.yesno import parse_yes_no
from tasks.mme import MMETask
from tasks.mme.scorer import ALL_SUBTASKS

SUFFIX = "\nAnswer the question using a single word or phrase."
YN = " Please answer yes or no."


@pytest.mark.parametrize(
    ("answer", "label"),
    [
        ("Yes", "yes"),
        ("yes, it is", "yes"),
        ("No.", "no"),
        ("Not sure", "no"),
        ("None", "no"),
        ("noisy", "no"),
        ("  Yes", "other"),
        ("Y", "other"),
        ("N", "other"),
        ("The answer is yes", "other"),
        ("", "other"),
        ("yes\n", "yes"),
    ],
)
def test_yes_no_parser(answer: str, label: str) -> None:
    assert parse_yes_no(answer) == label


def _write_mme(root: Path, items: list[tuple[str, str, str, str]], gt_question_suffix: str = YN) -> Path:
    """items: (subtask, image, question without suffix, GT). Writes llava_mme.jsonl and Your_Results."""
    gt_dir = root / "MME/eval_tool/Your_Results"
    gt_dir.mkdir(parents=True)
    gt_lines: dict[str, list[str]] = {}
    jsonl = []
    for subtask, image, question, gt in items:
        gt_lines.setdefault(subtask, []).append(f"{image}\t{question}{gt_question_suffix}\t{gt}\n")
        qid = f"{subtask}/{image}"
        jsonl.append(json.dumps({"question_id": qid, "image": qid, "text": question + SUFFIX, "category": subtask}))
    for subtask, lines in gt_lines.items():
        (gt_dir / f"{subtask}.txt").write_text("".join(lines), encoding="utf-8")
    (root / "MME/llava_mme.jsonl").write_text("\n".join(jsonl) + "\n", encoding="utf-8")
    return root


TINY = [
    ("existence", "a.jpg", "Is there a dog?", "Yes"),
    ("existence", "a.jpg", "Is there a cat?", "No"),
    ("existence", "b.jpg", "Is there a car?", "Yes"),
    ("existence", "b.jpg", "Is there a bus?", "No"),
    ("commonsense_reasoning", "c.png", "Is it safe?", "No"),
    ("commonsense_reasoning", "c.png", "Is it dangerous?", "Yes"),
]


def _responses(samples: list[Sample], texts: list[str]) -> dict[str, Response]:
    return {s.id: Response(text=t) for s, t in zip(samples, texts, strict=True)}


def test_load_joins_ground_truth(tmp_path: Path) -> None:
    samples = MMETask().load(_write_mme(tmp_path, TINY))
    assert [s.id for s in samples[:2]] == ["existence/a.jpg#0", "existence/a.jpg#1"]
    assert [s.target for s in samples] == ["Yes", "No", "Yes", "No", "No", "Yes"]
    assert samples[0].metadata == {
        "category": "existence",
        "question_id": "existence/a.jpg",
        "eval_question": "Is there a dog?" + YN,
        "image_name": "a.txt",
    }
    assert samples[0].question == "Is there a dog?" + SUFFIX
    assert samples[0].images[0].path == str(tmp_path / "MME/MME_Benchmark_release_version/existence/a.jpg")
    assert MMETask().build_request(samples[0], {}).prompt == "<image>\nIs there a dog?" + SUFFIX


def test_hand_worked_scores(tmp_path: Path) -> None:
    task = MMETask()
    samples = task.load(_write_mme(tmp_path, TINY))
    # existence: a both right; b one right -> acc 3/4, acc+ 1/2 -> 75 + 50 = 125.
    # commonsense: "Not sure" -> no (right), "maybe" -> other (wrong) -> acc 1/2, acc+ 0 -> 50.
    texts = ["Yes", "No", "Yes", "Yes", "Not sure", "maybe"]
    result = task.score(samples, _responses(samples, texts))
    assert result.breakdowns["subtask"]["existence"].value == pytest.approx(125.0)
    assert result.breakdowns["acc"]["existence"].value == pytest.approx(75.0)
    assert result.breakdowns["acc_plus"]["existence"].value == pytest.approx(50.0)
    assert result.breakdowns["subtask"]["commonsense_reasoning"].value == pytest.approx(50.0)
    assert list(result.metrics) == ["perception", "cognition", "total"]
    assert result.metrics["perception"].value == pytest.approx(125.0)
    assert result.metrics["cognition"].value == pytest.approx(50.0)
    assert result.metrics["total"].value == pytest.approx(175.0)
    # per-pair u = c/2 + [c==2]: 2 and 0.5 -> sd 1.0607 / sqrt(2) = 0.75 -> 75 points.
    assert result.breakdowns["subtask"]["existence"].stderr == pytest.approx(75.0)
    assert result.metrics["cognition"].stderr is None  # one image: no standard error
    assert result.n_parse_failures == 1
    assert result.samples[5].parsed == "other" and result.samples[5].parse_failed
    pair = "commonsense_reasoning/c.txt"  # the pair calculation.py forms: subtask / image of its first line
    assert result.samples[4].detail == {"gt": "No", "subtask": "commonsense_reasoning", "pair": pair}


def test_missing_answers_are_left_out_like_the_converter(tmp_path: Path) -> None:
    task = MMETask()
    samples = task.load(_write_mme(tmp_path, TINY[:4]))
    # The converter writes only a#0 and b#1; calculation.py pairs those two lines as one "image".
    result = task.score(samples, {samples[0].id: Response(text="Yes"), samples[3].id: Response(text="No")})
    assert result.n_missing == 2 and result.n_samples == 2
    assert result.metrics["perception"].value == pytest.approx(200.0)
    assert any("left out" in note for note in result.notes)
    with pytest.raises(DataError, match="odd number"):  # three lines: the tool asserts on the unpaired one
        task.score(samples, {s.id: Response(text="Yes") for s in samples[:3]})


def test_tabs_and_line_breaks_in_answers_become_spaces(tmp_path: Path) -> None:
    task = MMETask()
    samples = task.load(_write_mme(tmp_path, TINY[:4]))
    # One line per answer (eval_tool readme): "yes sure" -> yes, "no\tfine" -> "no fine" -> no,
    # "maybe\nyes" -> "maybe yes" -> other (only the first four characters count).
    result = task.score(samples, _responses(samples, ["Yes\nsure", "No\tfine", "Maybe\nyes", "No\r\nx"]))
    assert [s.parsed for s in result.samples] == ["yes", "no", "other", "no"]
    # acc 3/4; pairs: a both right, b one right -> acc+ 1/2 -> 75 + 50
    assert result.metrics["perception"].value == pytest.approx(125.0)
    assert any("replaced by spaces" in note for note in result.notes)


def test_two_space_ground_truth_join(tmp_path: Path) -> None:
    items = [("color", "d.jpg", "Is there a red bus in the image?", "No")]
    samples = MMETask().load(_write_mme(tmp_path, items, gt_question_suffix="  Please answer yes or no."))
    assert samples[0].metadata["eval_question"] == "Is there a red bus in the image?  Please answer yes or no."
    assert samples[0].target == "No"


def test_unjoinable_line_names_jsonl_line_and_gt_file(tmp_path: Path) -> None:
    _write_mme(tmp_path, TINY[:2])
    with (tmp_path / "MME/llava_mme.jsonl").open("a", encoding="utf-8") as handle:
        text = "Is there a horse?" + SUFFIX
        handle.write(json.dumps({"question_id": "existence/a.jpg", "image": "existence/a.jpg", "text": text}) + "\n")
    with pytest.raises(DataError, match=r"llava_mme\.jsonl:3: .*Your_Results/existence\.txt"):
        MMETask().load(tmp_path)


def test_odd_number_of_questions_in_a_subtask(tmp_path: Path) -> None:
    task = MMETask()
    samples = task.load(_write_mme(tmp_path, TINY[:3]))
    with pytest.raises(DataError, match="odd"):
        task.score(samples, _responses(samples, ["Yes", "No", "Yes"]))


def test_subset_keeps_pairs(tmp_path: Path) -> None:
    task = MMETask()
    samples = task.load(_write_mme(tmp_path, TINY))
    images = {s.metadata["question_id"] for s in samples}
    for limit in (1, 2, 3, 5, 100):
        chosen = task.subset(samples, limit)
        per_image = Counter(s.metadata["question_id"] for s in chosen)
        assert set(per_image.values()) == {2}, (limit, per_image)  # never half a pair
        assert limit <= len(chosen) < limit + 2 or len(chosen) == len(samples)
        assert [s.id for s in chosen] == [s.id for s in samples if s in chosen]  # the file's order
    assert len(task.subset(samples, 1)) == 2 and len(task.subset(samples, 3)) == 4
    assert {s.metadata["question_id"] for s in task.subset(samples, 100)} == images
    assert task.subset(samples, 0) == []
    # both subtasks are represented as soon as there is room for them (strata in proportion)
    assert {s.metadata["category"] for s in task.subset(samples, 4)} == {"existence", "commonsense_reasoning"}
    # the same ids whatever the order of the loaded samples
    assert {s.id for s in task.subset(samples[::-1], 3)} == {s.id for s in task.subset(samples, 3)}


def test_match_answers_by_question_id_and_prompt(tmp_path: Path) -> None:
    task = MMETask()
    samples = task.load(_write_mme(tmp_path, TINY[:4]))
    records = [
        {"question_id": "existence/a.jpg", "prompt": "Is there a cat?" + SUFFIX, "text": "No"},
        {"question_id": "existence/a.jpg", "prompt": "Is there a dog?" + SUFFIX, "text": "Yes"},
        {"question_id": "existence/a.jpg", "prompt": "Is there a cat?" + SUFFIX, "text": "Later"},
        {"question_id": "existence/b.jpg", "text": "first"},
        {"question_id": "existence/b.jpg", "text": "second"},
        {"question_id": "existence/zzz.jpg", "prompt": "?", "text": "ignored"},
    ]
    assert task.match_answers(samples, records) == {
        "existence/a.jpg#0": "Yes",
        "existence/a.jpg#1": "Later",
        "existence/b.jpg#0": "first",
        "existence/b.jpg#1": "second",
    }


def _write_results_dir(folder: Path) -> Path:
    folder.mkdir()
    for subtask in ALL_SUBTASKS:
        first, second = ("Yes", "Yes") if subtask == "existence" else ("yes", "no")
        text = f"x.jpg\tQ1? Please answer yes or no.\tYes\t{first}\nx.jpg\tQ2? Please answer yes or no.\tNo\t{second}"
        # OCR's last line has no trailing newline; the others end with one.
        (folder / f"{subtask}.txt").write_text(text + ("" if subtask == "OCR" else "\n"), encoding="utf-8")
    return folder


def test_directory_mode(tmp_path: Path) -> None:
    folder = _write_results_dir(tmp_path / "results")
    result = MMETask().score_path(folder, None)
    assert result is not None
    # existence: acc 1/2, acc+ 0 -> 50; the other 9 perception subtasks 200 each; cognition 4 x 200.
    assert result.metrics["perception"].value == pytest.approx(1850.0)
    assert result.metrics["cognition"].value == pytest.approx(800.0)
    assert result.n_samples == 28
    assert result.samples[0].sample_id == "existence/x.jpg#1"
    assert result.samples[1].parsed == "yes" and result.samples[1].correct is False


def test_directory_mode_is_refused_under_the_lmms_eval_protocol(tmp_path: Path) -> None:
    """A folder would be scored by calculation.py's rules but recorded as lmms-eval: refused in one line."""
    folder = _write_results_dir(tmp_path / "results")
    done = subprocess.run(
        [sys.executable, "-m", "harness", "score", "mme", "--answers", str(folder), "--protocol", "lmms-eval"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2, done.stderr
    message = done.stderr.strip()
    assert "\n" not in message and "eval_tool results folder" in message and str(folder) in message
    assert "scorer 'lmms-eval'" in message
    with pytest.raises(UsageError, match=r"calculation\.py"):
        MMETask().score_path(folder, None, load_protocol("lmms-eval").settings_for(MMETask()))


def test_directory_mode_errors(tmp_path: Path) -> None:
    task = MMETask()
    assert task.score_path(tmp_path / "nothing.jsonl", None) is None
    folder = _write_results_dir(tmp_path / "results")
    (folder / "count.txt").unlink()
    (folder / "OCR.txt").unlink()
    with pytest.raises(DataError, match=r"count\.txt, OCR\.txt"):
        task.score_path(folder, None)
    folder = _write_results_dir(tmp_path / "results2")
    (folder / "color.txt").write_text("x.jpg\tQ1\tYes\tyes\nx.jpg\tQ2\tNo\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"color\.txt:2: expected 4"):
        task.score_path(folder, None)
    (folder / "color.txt").write_text("x.jpg\tQ1\tYes\tyes\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"color\.txt: 1 lines, an odd number"):
        task.score_path(folder, None)
    (folder / "color.txt").write_text("x.jpg\tQ1\tMaybe\tyes\nx.jpg\tQ2\tNo\tno\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"color\.txt:1: ground truth"):
        task.score_path(folder, None)
