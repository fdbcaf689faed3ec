"""POPE: eval_pope.py's answer reading and per-split metrics, its positional pairing, the data files, demo and
prepare.

The golden values come from running LLaVA's own ``llava/eval/eval_pope.py`` (haotian-liu/LLaVA, as released
in ce1aa08 and unchanged up to c121f04) on the files ``write_case`` makes: the script was copied to /tmp and
run with ``python eval_pope.py --annotation-dir <root>/pope/coco --question-file
<root>/pope/llava_pope_test.jsonl --result-file <answers>``; the numbers below are what it printed
(``Accuracy`` / ``Precision`` / ``Recall`` / ``F1 score`` / ``Yes ratio`` and the TP FP TN FN line).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from harness.errors import DataError
from harness.protocol import load_protocol
from harness.types import Response
from tasks.pope import PopeTask
from tasks.pope.scorer import official_label, positive_label
from tests.helpers.score_cli import harness, score

SUFFIX = "\nAnswer the question using a single word or phrase."
SPLITS = ("adversarial", "popular", "random")
# (split, label, answer) in question-file order; question ids are 1.. in this order
ITEMS: list[tuple[str, str, str]] = [
    ("adversarial", "yes", "Yes"),
    ("adversarial", "no", "No"),
    ("adversarial", "no", "No."),
    ("adversarial", "yes", "Yes, there is."),
    ("adversarial", "no", "no, there is not"),
    ("adversarial", "yes", "NO"),
    ("adversarial", "yes", "Not sure."),
    ("adversarial", "no", ""),
    ("popular", "no", "There is no cat."),
    ("popular", "yes", "Yes. No, not really."),
    ("popular", "no", "nope"),
    ("popular", "no", "I do not think so"),
    ("popular", "yes", "Yes,no"),
    ("popular", "no", "no\nthere is none"),
    ("popular", "no", "It's not."),
    ("popular", "yes", "yes"),
    ("random", "yes", "Yes"),
    ("random", "no", "Yes"),
    ("random", "yes", "No"),
    ("random", "no", "No"),
    ("random", "yes", "yes."),
    ("random", "no", "No,"),
    ("random", "no", "Certainly not"),
]
# Case "shuffled": the random split's answers first and in reverse order, the 2nd adversarial answer left out.
SHUFFLED_ORDER = [*range(22, 15, -1), 0, *range(2, 16)]

# What eval_pope.py printed for each case: split -> (TP, FP, TN, FN, accuracy, precision, recall, F1, yes ratio).
GOLDEN: dict[str, dict[str, tuple[Any, ...]]] = {}  # filled in below from the official run


def write_case(root: Path) -> Path:
    """The data root (question file + three label files, LLaVA's layout) of the golden case."""
    questions, labels = [], {s: [] for s in SPLITS}
    for n, (split, label, _) in enumerate(ITEMS, start=1):
        text = f"Is there a thing number {n} in the image?"
        image = f"COCO_val2014_{n:012d}.jpg"
        labels[split].append({"question_id": len(labels[split]) + 1, "image": image, "text": text, "label": label})
        questions.append({"question_id": n, "image": image, "text": text + SUFFIX, "category": split})
    (root / "pope/coco").mkdir(parents=True, exist_ok=True)
    for split, rows in labels.items():
        (root / f"pope/coco/coco_pope_{split}.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "pope/llava_pope_test.jsonl").write_text("".join(json.dumps(q) + "\n" for q in questions))
    return root


def write_answers(path: Path, order: list[int] | None = None) -> Path:
    """LLaVA's answers file (model_vqa_loader's fields) with the answers of ITEMS, in ``order`` (default: all)."""
    order = list(range(len(ITEMS))) if order is None else order
    lines = [
        {"question_id": n + 1, "prompt": f"Is there a thing number {n + 1} in the image?{SUFFIX}", "text": ITEMS[n][2],
         "answer_id": f"a{n}", "model_id": "golden", "metadata": {}}
        for n in order
    ]  # fmt: skip
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


# ---------------------------------------------------------------------------------------------
# the answer reading


@pytest.mark.parametrize(
    ("answer", "label"),
    [
        ("Yes", "yes"),
        ("No", "no"),
        ("No.", "no"),
        ("no, there is not", "no"),
        ("NO", "yes"),  # only "No", "no" and "not" count
        ("nope", "yes"),
        ("Not sure.", "yes"),  # "Not" is not "not"
        ("I do not think so", "no"),
        ("", "yes"),
        ("Yes. No, not really.", "yes"),  # only the first sentence
        ("Yes,no", "yes"),  # commas deleted: "Yesno"
        ("No,", "no"),
        ("no\nthere is none", "yes"),  # split on spaces only: "no\nthere" is one word
        ("It's not.", "no"),
        ("There is no cat.", "no"),
    ],
)
def test_official_answer_reading(answer: str, label: str) -> None:
    assert official_label(answer) == label


def test_a_label_is_negative_only_when_exactly_no() -> None:
    assert not positive_label("no") and positive_label("yes") and positive_label("No") and positive_label("")


# ---------------------------------------------------------------------------------------------
# golden cases: harness score against eval_pope.py's printed numbers

# eval_pope.py's output (full precision) for case "all": every answer, in question order.
GOLDEN["all"] = {
    "adversarial": (4, 1, 3, 0, 0.875, 0.8, 1.0, 0.888888888888889, 0.625),
    "popular": (3, 2, 3, 0, 0.75, 0.6, 1.0, 0.7499999999999999, 0.625),
    "random": (2, 1, 3, 1, 0.7142857142857143, 0.6666666666666666, 0.6666666666666666, 0.6666666666666666,
               0.42857142857142855),
}  # fmt: skip
# case "shuffled": the answers in SHUFFLED_ORDER (paired with the labels by position within each split).
GOLDEN["shuffled"] = {
    "adversarial": (3, 2, 1, 1, 0.5714285714285714, 0.6, 0.75, 0.6666666666666665, 0.7142857142857143),
    "popular": (3, 2, 3, 0, 0.75, 0.6, 1.0, 0.7499999999999999, 0.625),
    "random": (1, 2, 2, 2, 0.42857142857142855, 0.3333333333333333, 0.3333333333333333, 0.3333333333333333,
               0.42857142857142855),
}  # fmt: skip
ORDERS = {"all": None, "shuffled": SHUFFLED_ORDER}


@pytest.mark.parametrize("case", list(ORDERS))
def test_harness_score_equals_eval_pope(tmp_path: Path, case: str) -> None:
    root = write_case(tmp_path / "root")
    answers = write_answers(tmp_path / "answers.jsonl", ORDERS[case])
    out, lines = score("pope", answers, root, tmp_path / "out")
    scores = out["scores"]
    for split, (tp, fp, tn, fn, acc, precision, recall, f1, yes_ratio) in GOLDEN[case].items():
        assert scores[f"{split}_accuracy"] == pytest.approx(100 * acc, abs=1e-9)
        assert scores[f"{split}_precision"] == pytest.approx(100 * precision, abs=1e-9)
        assert scores[f"{split}_recall"] == pytest.approx(100 * recall, abs=1e-9)
        assert scores[f"{split}_f1"] == pytest.approx(100 * f1, abs=1e-9)
        assert scores[f"{split}_yes_ratio"] == pytest.approx(100 * yes_ratio, abs=1e-9)
        details = [line["detail"] for line in lines if line["detail"] and line["detail"].get("split") == split]
        assert [sum(d[k] for d in details) for k in ("tp", "fp", "tn", "fn")] == [tp, fp, tn, fn]
    mean_f1 = sum(g[7] for g in GOLDEN[case].values()) / 3
    assert scores["f1"] == pytest.approx(100 * mean_f1, abs=1e-9)


def test_pairing_is_by_position_not_by_question_id(tmp_path: Path) -> None:
    """An answer is compared with the label at its position among the split's answers: leaving one out shifts
    the rest (the "shuffled" case above is the official run of exactly this)."""
    task = PopeTask()
    samples = task.load(write_case(tmp_path / "root"))
    adversarial = [s for s in samples if s.metadata["category"] == "adversarial"]
    responses = {s.id: Response(text="Yes" if s.target == "yes" else "No") for s in adversarial[1:]}
    result = task.score(adversarial, responses)
    compared = [s.detail["compared_label"] for s in result.samples]
    assert compared == [s.target for s in adversarial[:-1]]  # shifted by one
    assert result.n_missing == 1 and any("shifted" in note for note in result.notes)


def test_zero_denominators_are_reported_as_zero_with_a_note(tmp_path: Path) -> None:
    task = PopeTask()
    samples = task.load(write_case(tmp_path / "root"))
    result = task.score(samples, {s.id: Response(text="No") for s in samples})
    assert result.metrics["f1"].value == 0.0 and result.metrics["adversarial_precision"].value == 0.0
    assert any("adversarial: precision has a zero denominator" in note for note in result.notes)


# ---------------------------------------------------------------------------------------------
# data files


def test_question_count_must_match_the_label_file(tmp_path: Path) -> None:
    root = write_case(tmp_path / "root")
    label = root / "pope/coco/coco_pope_random.json"
    label.write_text("".join(label.read_text().splitlines(keepends=True)[:-1]))
    with pytest.raises(DataError, match=r"coco_pope_random\.json has only 6 lines"):
        PopeTask().load(root)


def test_unknown_category_names_the_line(tmp_path: Path) -> None:
    root = write_case(tmp_path / "root")
    path = root / "pope/llava_pope_test.jsonl"
    path.write_text(path.read_text().replace('"category": "random"', '"category": "gqa"', 1))
    with pytest.raises(DataError, match=r"llava_pope_test.jsonl:17: category 'gqa'"):
        PopeTask().load(root)


def test_prompts_of_both_protocols(tmp_path: Path) -> None:
    task = PopeTask()
    sample = task.load(write_case(tmp_path / "root"))[0]
    llava = task.build_request(sample, load_protocol("llava15").settings_for(task))
    lmms = task.build_request(sample, load_protocol("lmms-eval").settings_for(task))
    assert llava.prompt == "<image>\nIs there a thing number 1 in the image?" + SUFFIX
    assert lmms.prompt == llava.prompt and llava.generation.max_new_tokens == lmms.generation.max_new_tokens == 128


def test_lmms_eval_scorer_pools_the_splits(tmp_path: Path) -> None:
    """lmms-eval's rules: exact lower-cased yes/no, pooled; its yes_ratio is the share of yes labels."""
    task = PopeTask()
    samples = task.load(write_case(tmp_path / "root"))
    responses = {s.id: Response(text=ITEMS[int(s.id) - 1][2]) for s in samples}
    result = task.score(samples, responses, load_protocol("lmms-eval").settings_for(task))
    preds = [ITEMS[int(s.id) - 1][2].strip().lower() for s in samples]
    labels = [s.target for s in samples]
    tp = sum(p == "yes" and g == "yes" for p, g in zip(preds, labels))
    fp = sum(p == "yes" and g == "no" for p, g in zip(preds, labels))
    fn = sum(p == "no" and g == "yes" for p, g in zip(preds, labels))
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    assert result.metrics["f1"].value == pytest.approx(100 * 2 * precision * recall / (precision + recall))
    assert result.metrics["accuracy"].value == pytest.approx(100 * sum(map(str.__eq__, preds, labels)) / len(preds))
    assert result.metrics["yes_ratio"].value == pytest.approx(100 * labels.count("yes") / len(labels))


# ---------------------------------------------------------------------------------------------
# demo and prepare


def test_demo_writes_the_official_layout(tmp_path: Path) -> None:
    task = PopeTask()
    task.write_demo(tmp_path, 3)
    samples = task.load(tmp_path)
    assert {s.metadata["category"] for s in samples} == set(SPLITS)
    assert all(Path(s.images[0].path).is_file() for s in samples)
    assert sum(s.target == "yes" for s in samples) == sum(s.target == "no" for s in samples)
    first = [json.loads(line) for line in (tmp_path / "pope/coco/coco_pope_random.json").read_text().splitlines()]
    assert set(first[0]) == {"question_id", "image", "text", "label"}


def _pope_rows() -> list[dict[str, Any]]:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 40, 40)).save(buffer, format="JPEG")
    image = {"bytes": buffer.getvalue(), "path": None}
    rows = []
    for n, (split, label, _) in enumerate(ITEMS):
        rows.append({"id": str(n), "question_id": str(n % 8 + 1), "question": f"Is there a thing number {n + 1}?",
                     "answer": label, "image_source": f"COCO_val2014_{n // 2:012d}", "image": image,
                     "category": split})  # fmt: skip
    return rows


def test_prepare_from_the_hub_copy(tmp_path: Path) -> None:
    source = tmp_path / "src/data/test-00000-of-00001.parquet"
    source.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(_pope_rows()), source)
    root = tmp_path / "root"
    proc = harness("data", "prepare", "pope", "--source", str(tmp_path / "src"), "--data-root", str(root),
                   "--no-progress")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    samples = PopeTask().load(root)
    assert [s.target for s in samples] == [label for _, label, _ in ITEMS]
    assert [s.metadata["raw_question"] for s in samples][:2] == [
        "Is there a thing number 1?",
        "Is there a thing number 2?",
    ]
    assert samples[0].question == "Is there a thing number 1?" + SUFFIX
    assert len({s.id for s in samples}) == len(ITEMS) and Path(samples[0].images[0].path).is_file()
    sources = json.loads((root / "harness_sources/pope.json").read_text())
    assert "pope: 23 questions; the official LLaVA question file has 8910" in sources["limitations"]


# ---------------------------------------------------------------------------------------------
# statistics


@pytest.mark.parametrize("protocol", ["llava15", "lmms-eval"])
def test_statistics_recompute_the_scorer_values(tmp_path: Path, protocol: str) -> None:
    from harness.results.records import compact
    from harness.results.schema import sample_records
    from harness.stats.bootstrap import bootstrap
    from harness.stats.intervals import statistics_for

    task = PopeTask()
    settings = load_protocol(protocol).settings_for(task)
    samples = task.load(write_case(tmp_path / "root"))
    responses = {s.id: Response(text=ITEMS[int(s.id) - 1][2]) for s in samples}
    result = task.score(samples, responses, settings)
    records = sample_records("pope", samples, result, responses)
    stats = statistics_for(task, result.version, records, result.metrics, result.headline)
    assert set(result.headline) <= set(stats.own)
    intervals = bootstrap(stats.estimands(records))
    assert "f1" in intervals and (protocol == "lmms-eval" or "random_f1" in intervals)
    for metric, interval in intervals.items():
        assert interval.value == pytest.approx(result.metrics[metric].value, abs=1e-9), metric
    small = [compact(r, task.record_fields) for r in records]
    again = bootstrap(statistics_for(task, result.version, small, result.metrics, result.headline).estimands(small))
    assert {k: v.value for k, v in again.items()} == {k: v.value for k, v in intervals.items()}


def test_protocol_difference_of_docs_protocols(tmp_path: Path) -> None:
    """The docs/protocols.md row: ``No, there is not.`` for a "no" label is right under llava15, and neither
    yes nor no (wrong) under lmms-eval."""
    task = PopeTask()
    samples = [s for s in task.load(write_case(tmp_path / "root")) if s.target == "no"][:1]
    responses = {samples[0].id: Response(text="No, there is not.")}
    llava = task.score(samples, responses, load_protocol("llava15").settings_for(task))
    lmms = task.score(samples, responses, load_protocol("lmms-eval").settings_for(task))
    assert llava.samples[0].correct and llava.samples[0].parsed == "no"
    assert not lmms.samples[0].correct and lmms.samples[0].parse_failed
