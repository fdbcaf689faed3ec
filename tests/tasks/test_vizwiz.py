"""VizWiz: the test-dev export (LLaVA's converter), val scoring (the VizWiz evaluator, lmms-eval's rules),
loading errors, prompts and demo data.

Golden values: produced by running the official code on the inputs below (``PREDICTIONS``, ``VAL``), on
2026-12-03, with /tmp copies:

- LLaVA ``scripts/convert_vizwiz_for_submission.py`` @ 0a16dea (haotian-liu/LLaVA; unchanged since
  ce1aa08, and identical in TinyLLaVA_Factory @ d19cdd8) with its ``llava/eval/m4c_evaluator.py``,
  on a ``llava_test.jsonl`` of 15 lines (``question_id`` i, ``image`` VizWiz_test_<i:08d>.jpg) and an
  answers JSONL with ``PREDICTIONS``: its upload file is ``UPLOAD``.
- The VizWiz API's ``vqaEval.py`` (``VQAEval.evaluate``, accuracy part; __author__ Qing Li), fed the
  EvalAI-processed predictions as a results file and ``VAL`` as annotations: per-question
  ``evalQA`` (unrounded) is ``VAL_SCORES``; ``accuracy`` is ``{"overall": 82.0, "perAnswerType":
  {"yes/no": 100.0, "other": 81.25, "number": 95.0, "unanswerable": 50.0}}``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

from harness.errors import DataError
from harness.protocol import load_protocol
from harness.registry import get_task
from harness.types import Response
from tasks.vizwiz import VIZWIZ_SUFFIX, VizWizTask, VizWizValTask
from tasks.vizwiz import demo as vizwiz_demo
from tasks.vizwiz.scorer import lmms_eval_score, vizwiz_score

PREDICTIONS = ["Yes.", "Red, White", "Two.", "The bottle", "Unanswerable", "", "It's a can of soda", "1,000",
               "dont know", "2", "  blue\n", "Coca-Cola", "a dog?", "none", "10 dollars."]  # fmt: skip
UPLOAD = ["yes", "red white", "2", "bottle", "unanswerable", "", "it 's can of soda", "1000", "don't know", "2",
          "blue", "coca cola", "dog", "0", "10 dollars"]  # fmt: skip
VAL: list[tuple[str, list[str]]] = [
    ("yes/no", ["yes"] * 10),
    ("other", ["red white"] * 4 + ["red and white"] * 4 + ["white", "red"]),
    ("number", ["2"] * 2 + ["two"] * 6 + ["3", "2"]),  # answers are not normalised: "two" never matches "2"
    ("other", ["bottle"] * 3 + ["water bottle"] * 7),
    ("unanswerable", ["unanswerable"] * 8 + ["blurry"] * 2),
    ("unanswerable", ["unanswerable"] * 10),
    ("other", ["soda"] * 5 + ["can of soda"] * 5),
    ("number", ["1000"] * 3 + ["one thousand"] * 7),
    ("other", ["don't know"] * 4 + ["dont know"] * 6),
    ("number", ["2"] * 10),
    ("other", ["blue"] * 9 + ["navy"]),
    ("other", ["coca cola"] * 5 + ["coke"] * 5),
    ("other", ["dog"] * 2 + ["puppy"] * 8),
    ("number", ["0"] * 4 + ["none"] * 6),
    ("other", ["10"] * 4 + ["10 dollars"] * 6),
]
VAL_SCORES = [1.0, 1.0, 0.8999999999999998, 0.9, 1.0, 0.0, 0.0, 0.9, 1.0, 1.0, 1.0, 1.0, 0.6, 1.0, 1.0]
OFFICIAL_OVERALL, OFFICIAL_TYPES = 82.0, {"yes/no": 100.0, "other": 81.25, "number": 95.0, "unanswerable": 50.0}


def write_test_root(root: Path, n: int = len(PREDICTIONS)) -> Path:
    (root / "vizwiz").mkdir(parents=True, exist_ok=True)
    lines = [{"question_id": i, "image": f"VizWiz_test_{i:08d}.jpg", "text": f"Question {i}?{VIZWIZ_SUFFIX}",
              "category": "default"} for i in range(n)]  # fmt: skip
    (root / "vizwiz/llava_test.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return root


def val_item(i: int, answer_type: str, answers: list[str]) -> dict[str, Any]:
    return {"image": f"VizWiz_val_{i:08d}.jpg", "question": f"what is item {i}?",
            "answers": [{"answer_confidence": "yes", "answer": a} for a in answers],
            "answer_type": answer_type, "answerable": int(answer_type != "unanswerable")}  # fmt: skip


def write_val_root(root: Path, items: list[dict[str, Any]] | None = None) -> Path:
    (root / "vizwiz").mkdir(parents=True, exist_ok=True)
    items = [val_item(i, t, a) for i, (t, a) in enumerate(VAL)] if items is None else items
    (root / "vizwiz/val.json").write_text(json.dumps(items))
    return root


def harness(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, timeout=300)


# ----------------------------------------------------------------------------------------------
# test-dev


def test_export_equals_llava_converter(tmp_path: Path) -> None:
    root = write_test_root(tmp_path / "root")
    task = VizWizTask()
    samples = task.load(root)
    responses = {str(i): Response(text=p) for i, p in enumerate(PREDICTIONS)}
    written = task.export(samples, responses, root, tmp_path / "out" / task.export_filename)
    expected = [{"image": f"VizWiz_test_{i:08d}.jpg", "answer": a} for i, a in enumerate(UPLOAD)]
    assert json.loads(written.read_text()) == expected


def test_export_cli_from_an_answers_jsonl(tmp_path: Path) -> None:
    root = write_test_root(tmp_path / "root")
    answers = tmp_path / "answers.jsonl"
    answers.write_text("".join(json.dumps({"question_id": i, "text": p}) + "\n" for i, p in enumerate(PREDICTIONS)))
    out = tmp_path / "upload.json"
    proc = harness("export", "vizwiz", "--answers", str(answers), "--data-root", str(root), "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    assert [x["answer"] for x in json.loads(out.read_text())] == UPLOAD


def test_export_of_a_partial_run_warns_and_keeps_every_question(tmp_path: Path) -> None:
    root = write_test_root(tmp_path / "root", 3)
    task = VizWizTask()
    samples = task.load(root)
    with pytest.warns(UserWarning, match="2 question"):
        written = task.export(samples, {"1": Response(text="Yes")}, root, tmp_path / "s.json")
    assert json.loads(written.read_text()) == [
        {"image": "VizWiz_test_00000000.jpg", "answer": ""},
        {"image": "VizWiz_test_00000001.jpg", "answer": "yes"},
        {"image": "VizWiz_test_00000002.jpg", "answer": ""},
    ]


def test_test_dev_score_has_no_metric_and_points_to_evalai(tmp_path: Path) -> None:
    task = VizWizTask()
    samples = task.load(write_test_root(tmp_path))
    result = task.score(samples, {"0": Response(text="Yes.")})
    assert result.metrics == {} and result.headline == []
    assert any("challenge-page/2185" in n for n in result.notes)
    assert result.samples[0].parsed == "yes"


def test_test_dev_duplicates_are_named(tmp_path: Path) -> None:
    root = write_test_root(tmp_path, 2)
    path = root / "vizwiz/llava_test.jsonl"
    path.write_text(path.read_text() + path.read_text().splitlines()[0] + "\n")
    with pytest.raises(DataError, match=r"llava_test.jsonl:3: duplicate question_id 0"):
        VizWizTask().load(root)


def test_prompts_per_protocol(tmp_path: Path) -> None:
    task = VizWizTask()
    (sample,) = task.load(write_test_root(tmp_path, 1))
    sample.metadata["raw_question"] = "What is this? Read the LABEL"
    llava = task.build_request(sample, load_protocol("llava15").settings_for(task))
    lmms = task.build_request(sample, load_protocol("lmms-eval").settings_for(task))
    assert llava.prompt == f"<image>\nQuestion 0?{VIZWIZ_SUFFIX}"
    assert lmms.prompt == f"<image>\nWhat is this? read the label{VIZWIZ_SUFFIX}"  # str.capitalize()
    assert llava.generation.max_new_tokens == 128 and lmms.generation.max_new_tokens == 1024


# ----------------------------------------------------------------------------------------------
# val


def test_val_scores_equal_the_vizwiz_evaluator(tmp_path: Path) -> None:
    task = VizWizValTask()
    samples = task.load(write_val_root(tmp_path))
    result = task.score(samples, {s.id: Response(text=p) for s, p in zip(samples, PREDICTIONS)})
    assert [r.score for r in result.samples] == pytest.approx(VAL_SCORES, abs=1e-12)
    assert round(result.metrics["overall"].value, 2) == OFFICIAL_OVERALL
    for answer_type, value in OFFICIAL_TYPES.items():
        assert round(result.metrics[answer_type].value, 2) == value


def test_score_cli_reads_llava_answers_and_vizwiz_results_files(tmp_path: Path) -> None:
    root = write_val_root(tmp_path / "root")
    jsonl = tmp_path / "answers.jsonl"
    jsonl.write_text("".join(json.dumps({"question_id": f"VizWiz_val_{i:08d}.jpg", "text": p}) + "\n"
                             for i, p in enumerate(PREDICTIONS)))  # fmt: skip
    results = tmp_path / "results.json"
    results.write_text(json.dumps([{"image": f"VizWiz_val_{i:08d}.jpg", "answer": a} for i, a in enumerate(UPLOAD)]))
    for answers in (jsonl, results):
        proc = harness("score", "vizwiz_val", "--answers", str(answers), "--data-root", str(root), "--json")
        assert proc.returncode == 0, proc.stderr
        scores = json.loads(proc.stdout)["scores"]
        assert round(scores["overall"], 2) == OFFICIAL_OVERALL
        assert round(scores["unanswerable"], 2) == OFFICIAL_TYPES["unanswerable"]


def test_scorers_differ_where_lmms_eval_normalises_the_answers() -> None:
    two = VAL[2][1]
    assert vizwiz_score("2", two).accuracy == pytest.approx(0.9)
    assert lmms_eval_score("Two.", two).accuracy == 1.0  # lmms-eval runs the EvalAI processor on the answers too
    # the evaluator normalises the prediction itself: "the dog." reads as "dog" without LLaVA's processor
    assert vizwiz_score("the dog.", ["dog"] * 10).accuracy == 1.0


def test_protocols_give_different_numbers(tmp_path: Path) -> None:
    task = VizWizValTask()
    samples = task.load(write_val_root(tmp_path))
    responses = {s.id: Response(text=p) for s, p in zip(samples, PREDICTIONS)}
    lmms = task.score(samples, responses, load_protocol("lmms-eval").settings_for(task)).metrics["overall"].value
    # only question 2 changes: its six "two" answers become "2" (lmms-eval's own numbers: the conformance test)
    assert lmms == pytest.approx(100 * (sum(VAL_SCORES) + 0.1) / len(VAL))


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ({"image": "x.jpg"}, r"val.json: \[0\].*question"),
        ([val_item(0, "other", ["a"]), val_item(0, "other", ["b"])], r"\[1\]: duplicate image VizWiz_val_00000000"),
        ([{**val_item(0, "other", ["a"]), "answers": ["a"]}], r"\[0\]: 'answers' must be a list of objects"),
    ],
)
def test_bad_val_files_are_named(tmp_path: Path, items: Any, message: str) -> None:
    root = write_val_root(tmp_path, items if isinstance(items, list) else [items])
    with pytest.raises(DataError, match=message):
        VizWizValTask().load(root)


def test_entry_points_and_protocol_settings() -> None:
    assert isinstance(get_task("vizwiz"), VizWizTask) and isinstance(get_task("vizwiz_val"), VizWizValTask)
    for name in ("llava15", "lmms-eval"):
        protocol = load_protocol(name)
        for task in (VizWizTask(), VizWizValTask()):
            assert protocol.supports(task)
    assert load_protocol("lmms-eval").settings_for(VizWizValTask())["post_prompt"] == VIZWIZ_SUFFIX


# ----------------------------------------------------------------------------------------------
# demo data


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("vizwiz-demo")
    vizwiz_demo.write_val_demo(root, 7)
    vizwiz_demo.write_test_demo(root, 7)
    return root


def test_demo_files_have_the_official_schemas(demo_root: Path) -> None:
    val = json.loads((demo_root / "vizwiz/val.json").read_text())
    assert {"image", "question", "answers", "answer_type", "answerable"} <= set(val[0])
    assert all(len(x["answers"]) == 10 and set(x["answers"][0]) == {"answer", "answer_confidence"} for x in val)
    assert {x["answer_type"] for x in val} >= {"unanswerable", "other"}
    assert all((demo_root / "vizwiz/val" / x["image"]).is_file() for x in val)
    test = json.loads((demo_root / "vizwiz/test.json").read_text())
    lines = [json.loads(x) for x in (demo_root / "vizwiz/llava_test.jsonl").read_text().splitlines()]
    assert [x["image"] for x in lines] == [x["image"] for x in test]
    assert all(x["text"] == t["question"] + VIZWIZ_SUFFIX for x, t in zip(lines, test))


def test_demo_majority_answers_score_high(demo_root: Path) -> None:
    task = VizWizValTask()
    samples = task.load(demo_root)
    truth = {s.id: Response(text=max(set(s.target), key=s.target.count)) for s in samples}
    assert task.score(samples, truth).metrics["overall"].value > 90
    assert task.score(samples, {s.id: Response(text="purple") for s in samples}).metrics["overall"].value < 20


def test_demo_is_deterministic(tmp_path: Path) -> None:
    def tree(root: Path) -> dict[str, bytes]:
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    start = time.perf_counter()
    for name in ("a", "b"):
        vizwiz_demo.write_val_demo(tmp_path / name, 3)
        vizwiz_demo.write_test_demo(tmp_path / name, 3)
    assert time.perf_counter() - start < 3.0
    assert tree(tmp_path / "a") == tree(tmp_path / "b")


def test_no_warning_when_every_question_is_answered(tmp_path: Path) -> None:
    root = write_test_root(tmp_path, 2)
    task = VizWizTask()
    samples = task.load(root)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        task.export(samples, {"0": Response(text="a"), "1": Response(text="b")}, root, tmp_path / "ok.json")


# ----------------------------------------------------------------------------------------------
# data prepare (lmms-lab/VizWiz-VQA's parquet layout)


def test_prepare_writes_vizwiz_and_llava_files(tmp_path: Path) -> None:
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (9, 9, 9)).save(buffer, format="JPEG")
    image = {"bytes": buffer.getvalue(), "path": None}
    source, root = tmp_path / "src", tmp_path / "root"
    (source / "data").mkdir(parents=True)
    val = [{"question_id": f"VizWiz_val_{i:08d}", "image": image, "question": f"what is {i}?",
            "answers": ["yes"] * 10, "category": "yes/no"} for i in range(3)]  # fmt: skip
    test = [{"question_id": f"VizWiz_test_{i:08d}", "image": image, "question": f"where is {i}?",
             "answers": None, "category": None} for i in range(2)]  # fmt: skip
    pq.write_table(pa.Table.from_pylist(val), source / "data/val-00000-of-00001.parquet")
    pq.write_table(pa.Table.from_pylist(test), source / "data/test-00000-of-00001.parquet")
    for task in ("vizwiz_val", "vizwiz"):
        proc = harness("data", "prepare", task, "--source", str(source), "--data-root", str(root), "--no-progress")
        assert proc.returncode == 0, proc.stderr
    samples = VizWizValTask().load(root)
    assert [s.id for s in samples] == [f"VizWiz_val_{i:08d}" for i in range(3)]
    assert samples[0].target == ["yes"] * 10 and samples[0].metadata["answer_type"] == "yes/no"
    assert samples[0].images[0].open().size == (4, 4)
    lines = [json.loads(x) for x in (root / "vizwiz/llava_test.jsonl").read_text().splitlines()]
    assert lines[1] == {"question_id": 1, "image": "VizWiz_test_00000001.jpg", "text": f"where is 1?{VIZWIZ_SUFFIX}",
                        "category": "default"}  # fmt: skip
    assert json.loads((root / "vizwiz/test.json").read_text())[0] == {"image": "VizWiz_test_00000000.jpg",
                                                                     "question": "where is 0?"}  # fmt: skip
    assert (root / "vizwiz/test/VizWiz_test_00000001.jpg").is_file()
    record = json.loads((root / "harness_sources/vizwiz_val.json").read_text())
    assert record["repo"] == "lmms-lab/VizWiz-VQA"
    assert any("answer_confidence" in line for line in record["limitations"])
