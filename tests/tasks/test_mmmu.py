"""MMMU: MMMU's own evaluation code (parsing quirks, seeded random fallback, aggregation), the answers
formats of MMMU and TinyLLaVA Factory, lmms-eval's variant, ``data prepare`` and the demo data.

Golden values: MMMU-Benchmark/MMMU @ bb0b95a, ``mmmu/`` copied unmodified to a temporary folder and run
with Python 3.11 on the cases below (``CASES``): each subject's items written as
``<Subject>/output.json`` (``id, question_type, answer, all_choices, index2ans, response``), then
``main_parse_and_eval.py --path OUT --subject ALL`` and ``print_results.py --path OUT``; ``GOLDEN``
holds each item's ``parsed_pred`` and judge from the ``parsed_output.json`` files it wrote (open
predictions as the sorted reprs of the list), ``SUBJECT_ACC`` the table. ``main_eval_only.py`` ran on
``PREDICTIONS`` (the parsed letters, the raw open answers, one unparsed ``(B)``) with an answer file of
the cases' gold answers and printed ``Math 0.667`` and ``Overall 0.542``.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from harness.errors import DataError
from harness.protocol import load_protocol
from harness.types import Response
from tasks.mmmu import ANNS, ANSWER_DICT, MMMUTask
from tasks.mmmu.files import answer_entry, question_entry
from tasks.mmmu.parsing import normalize, open_correct, parse_multi_choice, parse_open
from tests.helpers import score_cli

TASK = MMMUTask()
LLAVA = load_protocol("llava15").settings_for(TASK)
LMMS = load_protocol("lmms-eval").settings_for(TASK)
MC4 = ["cat", "red dog", "1,000", "Not exist"]

# (id, question_type, options, gold, response), in the answers file's order (subjects interleaved)
CASES: list[tuple[str, str, list[str], Any, str]] = [
    ("validation_Math_1", "multiple-choice", MC4, "B", "B"),
    ("validation_Art_1", "multiple-choice", MC4, "C", "(C)"),
    ("validation_Accounting_1", "multiple-choice", MC4, "A", "The answer is (A), not (B)."),
    ("validation_Math_2", "multiple-choice", MC4, "C", "I think A at first and then C"),
    ("validation_Art_2", "multiple-choice", MC4, "A", "the cat is the right answer here"),
    ("validation_Sociology_1", "multiple-choice", MC4, "D", ""),
    ("validation_Math_3", "multiple-choice", MC4, "B", "maybe"),
    ("validation_Accounting_2", "multiple-choice", MC4, "B", "B."),
    ("validation_Art_3", "multiple-choice", MC4, "D", "a"),
    ("validation_Sociology_2", "multiple-choice", MC4, "D", "Option D: Not exist."),
    ("validation_Accounting_3", "multiple-choice", MC4, "B", "the red dog one is correct, not the cat"),
    ("validation_Math_4", "multiple-choice", ["1", "2", "3"], "C", "I cannot tell"),
    ("validation_Sociology_3", "multiple-choice", MC4, "A", "A, B"),
    ("validation_Accounting_4", "multiple-choice", MC4, "C", "1,000 dollars is the total amount paid"),
    ("validation_Art_4", "open", [], "3.5", "The answer is 3.5."),
    ("validation_Math_5", "open", [], "1000", "1,000"),
    ("validation_Sociology_4", "open", [], "2000", "so the result = 2e3"),
    ("validation_Accounting_5", "open", [], "cat", "It is a Cat."),
    ("validation_Art_5", "open", [], "x", "x"),
    ("validation_Math_6", "open", [], ["1/8", "0.125"], "The value is 0.125"),
    ("validation_Sociology_5", "open", [], "-7", "Therefore 7"),
    ("validation_Sociology_6", "open", [], "12.97", "about 12.974 grams. So the answer is 12.97 g"),
    ("validation_Accounting_6", "open", [], "Transformation", "hormone"),
    ("validation_Art_6", "multiple-choice", MC4, "B", "Between (B) and (C), I choose (C)"),
]
# parsed_pred and judge of main_parse_and_eval.py (the random letters: Art_3, Math_3, Math_4, Sociology_1-2)
GOLDEN: dict[str, tuple[Any, bool]] = {
    "validation_Math_1": ("B", True), "validation_Math_2": ("C", True), "validation_Math_3": ("A", False),
    "validation_Math_4": ("C", True), "validation_Math_5": (["0.0", "1000.0"], True),
    "validation_Math_6": (["0.12"], True), "validation_Art_1": ("C", True), "validation_Art_2": ("A", True),
    "validation_Art_3": ("A", False), "validation_Art_4": (["3.5"], True), "validation_Art_5": (["' x'", "'x '"], True),
    "validation_Art_6": ("C", False), "validation_Accounting_1": ("B", False), "validation_Accounting_2": ("B", True),
    "validation_Accounting_3": ("A", False), "validation_Accounting_4": ("C", True),
    "validation_Accounting_5": (["'a cat'"], True), "validation_Accounting_6": (["'hormone'"], False),
    "validation_Sociology_1": ("C", False), "validation_Sociology_2": ("B", False),
    "validation_Sociology_3": ("B", False), "validation_Sociology_4": (["2000.0", "3.0"], True),
    "validation_Sociology_5": (["7.0"], False), "validation_Sociology_6": (["'12.97 g'", "12.97"], True),
}  # fmt: skip
SUBJECT_ACC = {"Art": 0.667, "Accounting": 0.5, "Math": 0.833, "Sociology": 0.333}
OVERALL = 0.583
RANDOM_DRAWS = {"validation_Art_3", "validation_Math_3", "validation_Math_4", "validation_Sociology_1",
                "validation_Sociology_2"}  # fmt: skip


def subject(sid: str) -> str:
    return "_".join(sid.split("_")[1:-1])


def comparable(parsed: Any) -> Any:
    return parsed if isinstance(parsed, str) else sorted(repr(p) for p in parsed)


def write_root(root: Path) -> Path:
    """anns_for_eval.json and answer_dict_val.json for the cases (no images: scoring only)."""
    entries = [question_entry(sid, f"Question {sid}", q, options, gold if isinstance(gold, str) else str(gold), {}, {})
               for sid, q, options, gold, _ in CASES]  # fmt: skip
    answers = {sid: {"question_type": q, "ground_truth": gold} for sid, q, _, gold, _ in CASES}
    (root / "mmmu").mkdir(parents=True)
    (root / ANNS).write_text(json.dumps(entries), encoding="utf-8")
    (root / ANSWER_DICT).write_text(json.dumps(answers), encoding="utf-8")
    return root


def write_output_folder(folder: Path) -> Path:
    """The cases as MMMU's output folder (main_parse_and_eval.py's input)."""
    by_subject: dict[str, list[dict[str, Any]]] = {}
    for sid, q, options, gold, response in CASES:
        item: dict[str, Any] = {"id": sid, "question_type": q, "answer": gold, "response": response}
        if q == "multiple-choice":
            item["all_choices"] = [chr(65 + i) for i in range(len(options))]
            item["index2ans"] = dict(zip(item["all_choices"], options))
        by_subject.setdefault(subject(sid), []).append(item)
    for name, items in by_subject.items():
        (folder / name).mkdir(parents=True)
        (folder / name / "output.json").write_text(json.dumps(items), encoding="utf-8")
    return folder


def write_jsonl(path: Path, texts: dict[str, str]) -> Path:
    path.write_text("".join(json.dumps({"question_id": k, "text": v}) + "\n" for k, v in texts.items()))
    return path


def check_golden(samples: list[dict[str, Any]]) -> None:
    got = {s["id"]: (comparable(s["parsed"]), s["correct"]) for s in samples}
    assert got == GOLDEN
    assert {s["id"] for s in samples if s["parse_failed"]} == RANDOM_DRAWS


# ----------------------------------------------------------------------------------------------
# the official scripts' results


def test_output_folder_matches_main_parse_and_eval(tmp_path: Path) -> None:
    result = TASK.score_path(write_output_folder(tmp_path / "out"), None)
    assert result is not None
    check_golden([s.model_dump(include={"sample_id", "parsed", "correct", "parse_failed"}) | {"id": s.sample_id}
                  for s in result.samples])  # fmt: skip
    assert {k: round(m.value / 100, 3) for k, m in result.breakdowns["subject"].items()} == SUBJECT_ACC
    assert round(result.metrics["accuracy"].value / 100, 3) == OVERALL
    assert result.metrics["business"].value == pytest.approx(50.0)
    assert set(result.breakdowns["discipline"]) == {"Art and Design", "Business", "Science",
                                                    "Humanities and Social Science"}  # fmt: skip


def test_raw_answers_jsonl_scores_like_the_output_folder(tmp_path: Path) -> None:
    """The subjects are interleaved in the answers file: the draws still follow MMMU's subject order."""
    root = write_root(tmp_path / "root")
    answers = write_jsonl(tmp_path / "answers.jsonl", {sid: r for sid, _, _, _, r in CASES})
    out, samples = score_cli.score("mmmu", answers, root, tmp_path / "out")
    check_golden(samples)
    assert out["scores"]["accuracy"] == pytest.approx(100 * 14 / 24)


def test_tinyllava_answers_with_parsed_letters_score_the_same(tmp_path: Path) -> None:
    """TinyLLaVA's answers JSONL holds the parsed letter of each multiple-choice answer: parsing it again
    gives the same letter and draws nothing."""
    root = write_root(tmp_path / "root")
    texts = {sid: GOLDEN[sid][0] if q == "multiple-choice" else r for sid, q, _, _, r in CASES}
    out, samples = score_cli.score("mmmu", write_jsonl(tmp_path / "a.jsonl", texts), root, tmp_path / "out")
    assert {s["id"]: s["correct"] for s in samples} == {k: v[1] for k, v in GOLDEN.items()}
    assert not any(s["parse_failed"] for s in samples)
    assert out["scores"]["accuracy"] == pytest.approx(100 * 14 / 24)


def test_prediction_json_is_main_eval_only(tmp_path: Path) -> None:
    root = write_root(tmp_path / "root")
    predictions = {sid: GOLDEN[sid][0] if q == "multiple-choice" else r for sid, q, _, _, r in CASES}
    predictions["validation_Math_1"] = "(B)"  # compared as it is: wrong
    predictions["validation_Nope_1"] = "A"
    path = tmp_path / "total_val_output.json"
    path.write_text(json.dumps(predictions))
    proc = score_cli.harness("score", "mmmu", "--answers", str(path), "--data-root", str(root), "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert round(out["scores"]["accuracy"] / 100, 3) == 0.542  # main_eval_only.py: Overall 0.542
    result = TASK.score_path(path, root)
    assert result is not None and round(result.breakdowns["subject"]["Math"].value / 100, 3) == 0.667
    assert any("1 prediction(s) name no question" in n for n in result.notes)


def test_missing_answers_are_left_out_and_change_later_draws(tmp_path: Path) -> None:
    samples = TASK.load(write_root(tmp_path))
    responses = {sid: Response(text=r) for sid, _, _, _, r in CASES if sid != "validation_Art_3"}
    result = TASK.score(samples, responses, LLAVA)
    assert result.n_samples == 24 and result.n_missing == 1
    assert result.metrics["accuracy"].n == 23
    # Art_3 drew the first letter; without it Math_3 gets that draw
    draws = {s.sample_id: s.parsed for s in result.samples if s.parse_failed}
    first = random.Random(42).choice("ABCD")
    assert draws["validation_Math_3"] == first


# ----------------------------------------------------------------------------------------------
# parsing rules


@pytest.mark.parametrize(
    ("response", "letter"),
    [  # each letter as parse_multi_choice_response gave it right after random.seed(42)
        ("(B) or (C)? (B)", "B"),  # the last bracketed mention
        ("C) is it", "A"),  # no "(C)" nor " C ", 3 words: the first draw after seed 42
        ("A. B. C.", "C"),  # the outer "." is stripped: only " C " stands alone
        ("'D'", "D"),
        ("the answer is red dog or cat, surely cat", "A"),  # option texts, the last mention wins
        ("the answer is cat or red dog, surely", "B"),
    ],
)
def test_multiple_choice_rules(response: str, letter: str) -> None:
    assert parse_multi_choice(response, ["A", "B", "C", "D"], dict(zip("ABCD", MC4)), random.Random(42)) == letter


def test_lmms_eval_parser_variant() -> None:
    rng = random.Random(0)
    choices, index2ans = ["A", "B", "C", "D"], dict(zip("ABCD", MC4))
    assert parse_multi_choice("Answer: B.", choices, index2ans, rng, "lmms-eval") == "B"
    assert parse_multi_choice("BA is", choices, index2ans, rng, "lmms-eval") == "A"  # "A " at a word's end
    state = rng.getstate()
    assert parse_multi_choice("BA is", choices, index2ans, random.Random(0)) in choices  # official: random
    assert rng.getstate() == state


def test_open_parsing_and_matching() -> None:
    assert normalize("1,234.567") == [1234.57]
    assert normalize("Y") == [" y", "y "]
    assert parse_open("Thus x = 12") == [12.0]  # official: [12.0]
    assert open_correct("b", parse_open("b")) and not open_correct("b", parse_open("bob"))  # " b" / "b "
    assert open_correct(["24/7", "3.429"], parse_open("so it is 3.429 feet"))
    assert not open_correct("['24/7', '3.429']", parse_open("so it is 3.429 feet"))  # lmms-eval's string gold


def test_lmms_eval_scores_against_the_raw_answer_string(tmp_path: Path) -> None:
    samples = TASK.load(write_root(tmp_path))
    math6 = next(s for s in samples if s.id == "validation_Math_6")
    assert math6.metadata["raw_answer"] == "['1/8', '0.125']"
    responses = {"validation_Math_6": Response(text="The value is 0.125")}
    assert TASK.score(samples, responses, LLAVA).samples[0].correct
    assert not TASK.score(samples, responses, LMMS).samples[0].correct


# ----------------------------------------------------------------------------------------------
# files, prompts, data prepare, demo


def test_bad_files_name_the_file(tmp_path: Path) -> None:
    root = write_root(tmp_path)
    answers = json.loads((root / ANSWER_DICT).read_text())
    del answers["validation_Art_2"]
    (root / ANSWER_DICT).write_text(json.dumps(answers))
    with pytest.raises(DataError, match=r"answer_dict_val\.json: no ground truth for validation_Art_2"):
        TASK.load(root)


def png(color: tuple[int, int, int]) -> dict[str, Any]:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), color).save(buffer, format="PNG")
    return {"bytes": buffer.getvalue(), "path": None}


def mmmu_row(sid: str, question: str, options: str, answer: str, qtype: str, images: int) -> dict[str, Any]:
    row: dict[str, Any] = {"id": sid, "question": question, "options": options, "explanation": "", "answer": answer,
                           "question_type": qtype, "img_type": "['Diagrams']", "topic_difficulty": "Easy",
                           "subfield": "Sub"}  # fmt: skip
    for n in range(1, 8):
        row[f"image_{n}"] = png((n * 30, 0, 0)) if n <= images else None
    return row


def test_prepare_from_the_lmms_lab_copy(tmp_path: Path) -> None:
    rows = [
        mmmu_row("validation_Art_1", "Who painted <image 1>?", "['Monet', 'Manet']", "B", "multiple-choice", 1),
        mmmu_row("validation_Math_15", "Speed in <image 1>?", "[]", "['24/7', '3.429']", "open", 1),
        mmmu_row("validation_Design_2", "Compare <image 1> and <image 2>.", "['<image 2>', 'none']", "A",
                 "multiple-choice", 2),
    ]  # fmt: skip
    path = tmp_path / "snap/data/validation-00000-of-00001.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    proc = score_cli.harness("data", "prepare", "mmmu", "--source", str(tmp_path / "snap"), "--data-root",
                             str(tmp_path / "root"), "--no-progress")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    root = tmp_path / "root"
    entries = json.loads((root / ANNS).read_text())
    assert entries[0]["prompt"] == ("Who painted <image 1>?\n(A) Monet\n(B) Manet\n\n"
                                    "Answer with the option's letter from the given choices directly.")  # fmt: skip
    assert entries[1]["prompt"] == "Speed in <image 1>?\nAnswer the question using a single word or phrase."
    assert entries[0]["image"] == "validation_Art_1_image_1.png"
    assert entries[0]["index2ans"] == {"A": "Monet", "B": "Manet"}
    gold = json.loads((root / ANSWER_DICT).read_text())
    assert gold["validation_Math_15"] == {"question_type": "open", "ground_truth": ["24/7", "3.429"]}
    assert (root / "mmmu/all_images/validation_Design_2_image_2.png").read_bytes() == rows[2]["image_2"]["bytes"]
    samples = TASK.load(root)
    design = samples[2]
    llava = TASK.build_request(design, LLAVA)
    assert llava.prompt.startswith("<image>\nCompare <image 1>") and len(llava.images) == 1
    lmms = TASK.build_request(design, LMMS)
    assert lmms.prompt == ("<image> <image>\nCompare <image 1> and <image 2>.\nA. <image 2>\nB. none\n\n"
                           "Answer with the option's letter from the given choices directly.")  # fmt: skip
    assert [Path(i.path).name for i in lmms.images] == [f"validation_Design_2_image_{n}.png" for n in (1, 2)]
    open_prompt = TASK.build_request(samples[1], LMMS).prompt
    assert open_prompt.endswith("?\n\nAnswer the question using a single word or phrase.")
    result = TASK.score(samples, {"validation_Math_15": Response(text="The speed is 3.429")}, LLAVA)
    assert result.metrics["accuracy"].value == 100.0


def test_option_images_leave_tinyllava_without_an_image() -> None:
    options = ["<img='a.png'>", "<img='b.png'>"]
    entry = question_entry("validation_Art_9", "Which?", "multiple-choice", options, "A", {"image_1": "x.png"}, {})
    assert "image" not in entry
    assert answer_entry("open", "['1', '2']")["ground_truth"] == ["1", "2"]


def test_demo_requests_match_their_images(tmp_path: Path) -> None:
    TASK.write_demo(tmp_path, 0)
    samples = TASK.load(tmp_path)
    assert len(samples) == 30 and len({s.metadata["discipline"] for s in samples}) == 6
    for settings in (LLAVA, LMMS):
        for sample in samples:
            request = TASK.build_request(sample, settings)
            assert request.prompt.count("<image>") == len(request.images)
            assert all(Path(i.path).is_file() for i in request.images)
    no_image = [s.id for s in samples if not TASK.build_request(s, LLAVA).images]
    assert no_image == ["validation_History_1"]
    answers = {s.id: Response(text=s.target if isinstance(s.target, str) else s.target[0]) for s in samples}
    assert TASK.score(samples, answers, LLAVA).metrics["accuracy"].value == 100.0


def test_prepare_from_the_per_subject_mmmu_copy(tmp_path: Path) -> None:
    """MMMU/MMMU keeps one config per subject: ``<Subject>/validation-*.parquet``."""
    for sid in ("validation_Math_1", "validation_Art_1"):
        path = tmp_path / f"snap/{sid.split('_')[1]}/validation-00000-of-00001.parquet"
        path.parent.mkdir(parents=True)
        row = mmmu_row(sid, "Which? <image 1>", "['x', 'y']", "A", "multiple-choice", 1)
        pq.write_table(pa.Table.from_pylist([row]), path)
    (tmp_path / "snap/Math/dev-00000-of-00001.parquet").write_bytes(b"not read")
    proc = score_cli.harness("data", "prepare", "mmmu", "--source", str(tmp_path / "snap"), "--data-root",
                             str(tmp_path / "root"), "--no-progress")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert [s.id for s in TASK.load(tmp_path / "root")] == ["validation_Art_1", "validation_Math_1"]
