"""VQA-v2: val2014 scoring (vqaEval.py, LLaVA's EvalAI step, lmms-eval), test-dev export, demo data."""

from __future__ import annotations

import json
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from harness.errors import DataError, UsageError
from harness.protocol import load_protocol
from harness.registry import get_task
from harness.types import Response
from tasks.common.vqa_eval import normalize_official
from tasks.demo.scenes import make_scene
from tasks.vqav2 import LLAVA_SUFFIX, VQAv2Task, VQAv2ValTask, val_image_name
from tasks.vqav2 import demo as vqa_demo
from tasks.vqav2.scorer import build_submission, lmms_eval_submission_answer

QUESTIONS = "vqav2/v2_OpenEnded_mscoco_val2014_questions.json"
ANNOTATIONS = "vqav2/v2_mscoco_val2014_annotations.json"
TEST_DEV = "vqav2/llava_vqav2_mscoco_test-dev2015.jsonl"
TEST_ALL = "vqav2/llava_vqav2_mscoco_test2015.jsonl"


def _ann(qid: int, answers: list[str], image_id: int = 1, qtype: str = "what", atype: str = "other") -> dict[str, Any]:
    return {
        "question_id": qid,
        "image_id": image_id,
        "question_type": qtype,
        "answer_type": atype,
        "multiple_choice_answer": answers[0],
        "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": i + 1} for i, a in enumerate(answers)],
    }


def _write_val(root: Path, annotations: list[dict[str, Any]], questions: list[dict[str, Any]] | None = None) -> Path:
    (root / "vqav2").mkdir(parents=True, exist_ok=True)
    if questions is None:
        questions = [
            {"image_id": a["image_id"], "question": f"Question {a['question_id']}?", "question_id": a["question_id"]}
            for a in annotations
        ]
    (root / QUESTIONS).write_text(json.dumps({"data_subtype": "val2014", "questions": questions}))
    (root / ANNOTATIONS).write_text(json.dumps({"data_subtype": "val2014", "annotations": annotations}))
    return root


def _val(tmp_path: Path, annotations: list[dict[str, Any]]):
    task = VQAv2ValTask()
    return task, task.load(_write_val(tmp_path, annotations))


def _responses(texts: dict[str, str]) -> dict[str, Response]:
    return {k: Response(text=v) for k, v in texts.items()}


# ----------------------------------------------------------------------------------------------
# val2014 loading and scoring


def test_val_load_joins_questions_and_annotations(tmp_path: Path) -> None:
    task, samples = _val(tmp_path, [_ann(7001, ["red"] * 10, image_id=7), _ann(9002, ["2"] * 10, image_id=9)])
    assert [s.id for s in samples] == ["7001", "9002"]
    first = samples[0]
    assert first.question == "Question 7001?" and first.target == ["red"] * 10
    assert first.images[0].path.endswith("vqav2/val2014/COCO_val2014_000000000007.jpg")
    assert "answer_records" not in first.metadata  # answer ids 1-10: no two answer dicts can be equal
    assert val_image_name(123456) == "COCO_val2014_000000123456.jpg"
    request = task.build_request(first, load_protocol("llava15").settings_for(task))
    assert request.prompt == "<image>\nQuestion 7001?" + LLAVA_SUFFIX
    assert request.generation.max_new_tokens == 128


def test_equal_answer_dicts_leave_each_other_out_as_in_vqaeval(tmp_path: Path) -> None:
    """Four identical {answer, confidence, id} dicts: vqaEval.py's ``item != gtAnsDatum`` leaves all four out
    for each of them (0 of 6 blues match "red"), while each blue sees the 4 reds: (4 x 0 + 6 x 1) / 10."""
    repeated = _ann(1, ["red"] * 4 + ["blue"] * 6)
    for answer in repeated["answers"][:4]:
        answer["answer_id"] = 1
    task, samples = _val(tmp_path, [repeated, _ann(2, ["red"] * 4 + ["blue"] * 6)])
    assert samples[0].metadata["answer_records"][:5] == [["yes", 1]] * 4 + [["yes", 5]]
    assert "answer_records" not in samples[1].metadata
    result = task.score(samples, _responses({"1": "red", "2": "red"}))
    assert [s.score for s in result.samples] == pytest.approx([0.6, 1.0])


def test_val_overall_and_types_are_unrounded_means(tmp_path: Path) -> None:
    anns = [
        _ann(1, ["yes"] * 9 + ["no"], image_id=1, qtype="is the", atype="yes/no"),
        _ann(2, ["2"] * 1 + ["3"] * 9, image_id=1, qtype="how many", atype="number"),
        _ann(3, ["red"] * 10, image_id=2, qtype="what color is the", atype="other"),
    ]
    task, samples = _val(tmp_path, anns)
    # "yes" -> 1; "2" matches one answer -> 0.3; "blue" -> 0.  Overall 100 * 1.3 / 3 = 43.333...
    result = task.score(samples, _responses({"1": "yes", "2": "2", "3": "blue"}))
    assert result.metrics["overall"].value == pytest.approx(130 / 3)
    assert result.metrics["overall"].value != round(130 / 3, 2)
    assert result.metrics["yes/no"].value == pytest.approx(100)
    assert result.metrics["number"].value == pytest.approx(30)
    assert result.metrics["other"].value == pytest.approx(0)
    assert list(result.metrics) == ["overall", "yes/no", "number", "other"]
    assert sorted(result.breakdowns["question_type"]) == ["how many", "is the", "what color is the"]
    assert result.breakdowns["answer_type"]["number"].n == 1
    assert result.headline == ["overall"]
    assert result.metrics["overall"].stderr is not None  # two images: a clustered standard error
    assert [s.score for s in result.samples] == pytest.approx([1.0, 0.3, 0.0])


def test_settings_none_is_llava15_with_evalai_predictions(tmp_path: Path) -> None:
    task, samples = _val(tmp_path, [_ann(1, ["yes"] * 10)])
    answers = _responses({"1": "Yes."})
    official_raw = {**load_protocol("llava15").settings_for(task), "prediction_processor": "none"}
    assert task.score(samples, answers).metrics["overall"].value == 100.0
    assert task.score(samples, answers, load_protocol("llava15").settings_for(task)).metrics["overall"].value == 100.0
    assert task.score(samples, answers, official_raw).metrics["overall"].value == 0.0
    assert task.score(samples, answers, load_protocol("lmms-eval").settings_for(task)).metrics["overall"].value == 100.0
    described = {
        "llava15": task.score(samples, answers).metrics["overall"].description,
        "raw": task.score(samples, answers, official_raw).metrics["overall"].description,
    }
    assert "vqaEval.py on answers passed through LLaVA's EvalAI answer processor" in described["llava15"]
    assert "vqaEval.py on the raw answers" in described["raw"]


def test_protocols_differ_on_commas_and_uniform_number_words(tmp_path: Path) -> None:
    anns = [_ann(1, ["red white"] * 10, image_id=1), _ann(2, ["Two"] * 10, image_id=2, atype="number")]
    task, samples = _val(tmp_path, anns)
    answers = _responses({"1": "red,white", "2": "two"})
    llava = task.score(samples, answers, load_protocol("llava15").settings_for(task))
    lmms = task.score(samples, answers, load_protocol("lmms-eval").settings_for(task))
    raw = task.score(samples, answers, {"prediction_processor": "none", "scorer": "official"})
    # llava15: EvalAI turns "red,white" into "redwhite" and "two" into "2"; ten raw answers are compared as is.
    assert [s.score for s in llava.samples] == [0.0, 0.0]
    assert [s.parsed for s in llava.samples] == ["redwhite", "2"]
    # lmms-eval: "red white" and "2" on both sides.
    assert [s.score for s in lmms.samples] == [1.0, 1.0]
    # vqaEval.py on raw predictions: "red,white" != "red white"; "two" != "Two".
    assert [s.score for s in raw.samples] == [0.0, 0.0]


def test_unknown_setting_value_is_a_usage_error(tmp_path: Path) -> None:
    task, samples = _val(tmp_path, [_ann(1, ["yes"] * 10)])
    with pytest.raises(UsageError, match="scorer"):
        task.score(samples, {}, {"scorer": "gqa"})
    with pytest.raises(UsageError, match="prompt"):
        task.build_request(samples[0], {"prompt": "fancy"})


def test_missing_answers_score_as_empty(tmp_path: Path) -> None:
    task, samples = _val(tmp_path, [_ann(1, ["yes"] * 10), _ann(2, ["no"] * 10, image_id=2)])
    result = task.score(samples, _responses({"1": "yes"}))
    assert result.n_missing == 1 and result.metrics["overall"].value == 50.0
    assert any("no answer" in note for note in result.notes)


def test_match_answers_later_wins_and_unknown_ids_are_ignored(tmp_path: Path) -> None:
    task, samples = _val(tmp_path, [_ann(1, ["yes"] * 10)])
    records = [{"question_id": 1, "text": "no"}, {"question_id": 99, "text": "x"}, {"question_id": 1, "text": "yes"}]
    assert task.match_answers(samples, records) == {"1": "yes"}


# ----------------------------------------------------------------------------------------------
# bad input


def test_annotation_without_ten_answers_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"question_id 5: 9 answers"):
        _val(tmp_path, [_ann(5, ["yes"] * 9)])


def test_malformed_json_names_file_and_line(tmp_path: Path) -> None:
    _write_val(tmp_path, [_ann(1, ["yes"] * 10)])
    (tmp_path / ANNOTATIONS).write_text('{"annotations": [\n{"question_id": 1,,}]}')
    with pytest.raises(DataError, match=r"v2_mscoco_val2014_annotations.json:2:"):
        VQAv2ValTask().load(tmp_path)


@pytest.mark.parametrize(
    ("annotations", "questions", "message"),
    [
        ([_ann(1, ["a"] * 10), _ann(1, ["b"] * 10)], None, "duplicate question_id 1"),
        ([_ann(1, ["a"] * 10)], [{"image_id": 1, "question": "q?", "question_id": 2}], "no question"),
        ([], [{"image_id": 1, "question": "q?", "question_id": 2}], "no annotation for question_id 2"),
        ([{"question_id": 1, "image_id": 1, "answers": []}], None, "missing field 'question_type'"),
    ],
)
def test_inconsistent_val_files(
    tmp_path: Path, annotations: list[dict[str, Any]], questions: list[dict[str, Any]] | None, message: str
) -> None:
    if questions is None:
        questions = [{"image_id": 1, "question": "q?", "question_id": 1}]
    with pytest.raises(DataError, match=message):
        VQAv2ValTask().load(_write_val(tmp_path, annotations, questions))


def test_test_dev_malformed_line_and_duplicates(tmp_path: Path) -> None:
    (tmp_path / "vqav2").mkdir()
    good = json.dumps({"question_id": 1, "image": "a.jpg", "text": "Q?" + LLAVA_SUFFIX})
    (tmp_path / TEST_DEV).write_text(good + "\n{oops\n")
    with pytest.raises(DataError, match=r"test-dev2015.jsonl:2"):
        VQAv2Task().load(tmp_path)
    (tmp_path / TEST_DEV).write_text(good + "\n" + good + "\n")
    with pytest.raises(DataError, match=r"test-dev2015.jsonl:2: duplicate question_id 1"):
        VQAv2Task().load(tmp_path)


# ----------------------------------------------------------------------------------------------
# test-dev: no score, the submission file


def _write_test(root: Path, dev: list[int], every: list[int]) -> Path:
    (root / "vqav2").mkdir(parents=True, exist_ok=True)

    def lines(ids: list[int]) -> str:
        records = [
            {"question_id": q, "image": f"COCO_test2015_{q // 1000:012d}.jpg", "text": f"Q{q}?" + LLAVA_SUFFIX}
            for q in ids
        ]
        return "".join(json.dumps(r) + "\n" for r in records)

    (root / TEST_DEV).write_text(lines(dev))
    (root / TEST_ALL).write_text(lines(every))
    return root


def test_test_dev_score_has_no_metric_and_points_to_evalai(tmp_path: Path) -> None:
    task = VQAv2Task()
    samples = task.load(_write_test(tmp_path, [1000, 2000], [1000, 1001, 2000]))
    assert samples[0].metadata["raw_question"] == "Q1000?"
    result = task.score(samples, _responses({"1000": "Two."}))
    assert result.metrics == {} and result.headline == [] and task.headline == ()
    assert any("EvalAI" in note and "830" in note for note in result.notes)
    assert result.n_missing == 1 and result.samples[0].parsed == "2"
    lmms = task.score(samples, _responses({"1000": "red,white"}), load_protocol("lmms-eval").settings_for(task))
    assert lmms.samples[0].parsed == "red white"


def test_export_covers_every_test2015_question_in_order(tmp_path: Path) -> None:
    task = VQAv2Task()
    root = _write_test(tmp_path, [1000, 2000, 2001], [2001, 1000, 1001, 2000, 3000])
    samples = task.load(root)
    answers = _responses({"1000": "Two", "2001": "man's red,white hat?"})
    written = task.export(samples, answers, root, tmp_path / "out" / task.export_filename)
    assert written.name == "vqav2_test-dev_submission.json"
    data = json.loads(written.read_text())
    assert data == [
        {"question_id": 2001, "answer": "man 's redwhite hat"},
        {"question_id": 1000, "answer": "2"},
        {"question_id": 1001, "answer": ""},
        {"question_id": 2000, "answer": ""},
        {"question_id": 3000, "answer": ""},
    ]
    assert written.read_text() == json.dumps(data)  # json.dump's default separators, as LLaVA writes it


def test_export_warns_about_answers_outside_test2015(tmp_path: Path) -> None:
    task = VQAv2Task()
    root = _write_test(tmp_path, [1000, 5000], [1000])
    samples = task.load(root)
    with pytest.warns(UserWarning, match=r"1 answered question\(s\) are not in"):
        written = task.export(samples, _responses({"1000": "yes", "5000": "no"}), root, tmp_path / "s.json")
    assert json.loads(written.read_text()) == [{"question_id": 1000, "answer": "yes"}]
    submission = build_submission(root / TEST_ALL, {"1000": "yes", "5000": "no"})
    assert submission.unknown_ids == ["5000"] and submission.n_answered == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        task.export(samples, _responses({"1000": "yes"}), root, tmp_path / "t.json")


def test_lmms_eval_submission_answer_keeps_commas_as_spaces() -> None:
    assert lmms_eval_submission_answer(" red,white\n") == "red white"
    assert lmms_eval_submission_answer("man's") == "man's"
    assert lmms_eval_submission_answer("Two.") == "2"


def test_test_dev_prompts_per_protocol(tmp_path: Path) -> None:
    task = VQAv2Task()
    sample = task.load(_write_test(tmp_path, [1000], [1000]))[0]
    llava = task.build_request(sample, load_protocol("llava15").settings_for(task))
    lmms = task.build_request(sample, load_protocol("lmms-eval").settings_for(task))
    assert llava.prompt == lmms.prompt == "<image>\nQ1000?" + LLAVA_SUFFIX
    assert (llava.generation.max_new_tokens, lmms.generation.max_new_tokens) == (128, 16)
    custom = task.build_request(sample, {**load_protocol("lmms-eval").settings_for(task), "post_prompt": ""})
    assert custom.prompt == "<image>\nQ1000?"


# ----------------------------------------------------------------------------------------------
# plugin wiring


def test_entry_points_and_protocol_settings() -> None:
    assert isinstance(get_task("vqav2"), VQAv2Task) and isinstance(get_task("vqav2_val"), VQAv2ValTask)
    assert VQAv2Task.hf_dataset == VQAv2ValTask.hf_dataset == "lmms-lab/VQAv2"
    for name in ("llava15", "lmms-eval"):
        protocol = load_protocol(name)
        for task in (VQAv2Task(), VQAv2ValTask()):
            assert protocol.supports(task)
            assert protocol.settings_for(task) == {**protocol.defaults, **protocol.tasks[task.name]}


# ----------------------------------------------------------------------------------------------
# demo data


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("vqav2-demo")
    vqa_demo.write_val_demo(root, 7)
    vqa_demo.write_test_demo(root, 7)
    return root


def test_demo_val_files_have_the_official_schema(demo_root: Path) -> None:
    questions = json.loads((demo_root / QUESTIONS).read_text())
    annotations = json.loads((demo_root / ANNOTATIONS).read_text())
    assert set(questions) == {"info", "task_type", "data_type", "license", "data_subtype", "questions"}
    assert set(annotations) == {"info", "license", "data_subtype", "annotations", "data_type"}
    assert questions["data_subtype"] == annotations["data_subtype"] == "val2014"
    assert questions["task_type"] == "Open-Ended" and questions["data_type"] == "mscoco"
    assert 40 <= len(questions["questions"]) == len(annotations["annotations"]) <= 45
    uniform = 0
    for q, a in zip(questions["questions"], annotations["annotations"]):
        assert set(q) == {"image_id", "question", "question_id"}
        assert set(a) == {
            "question_type", "multiple_choice_answer", "answers", "image_id", "answer_type", "question_id"
        }  # fmt: skip
        assert q["question_id"] == a["question_id"] and q["question_id"] // 1000 == q["image_id"] == a["image_id"]
        assert a["question_type"] in vqa_demo.QUESTION_TYPES
        assert a["question_type"] == max(
            (t for t in vqa_demo.QUESTION_TYPES if q["question"].lower().startswith(t + " ")), key=len
        )
        assert a["answer_type"] in ("yes/no", "number", "other")
        assert [x["answer_id"] for x in a["answers"]] == list(range(1, 11))
        assert all(x["answer_confidence"] in ("yes", "maybe", "no") for x in a["answers"])
        texts = [x["answer"] for x in a["answers"]]
        uniform += len(set(texts)) == 1
        normalised = Counter(normalize_official(t) for t in texts)
        assert normalised[a["multiple_choice_answer"]] >= 5
        assert (demo_root / "vqav2/val2014" / val_image_name(q["image_id"])).is_file()
    assert 0 < uniform < len(annotations["annotations"]) // 2
    assert len(vqa_demo.QUESTION_TYPES) == 64 == len(set(vqa_demo.QUESTION_TYPES))
    assert vqa_demo.question_type("Why is the sky blue?") == "why is the"
    assert vqa_demo.question_type("Where is the cat?") == "where is the"
    assert vqa_demo.question_type("Whose hat is it?") == vqa_demo.NONE_OF_THE_ABOVE


def test_demo_answers_follow_from_the_scene(demo_root: Path) -> None:
    annotations = json.loads((demo_root / ANNOTATIONS).read_text())["annotations"]
    questions = {q["question_id"]: q["question"] for q in json.loads((demo_root / QUESTIONS).read_text())["questions"]}
    checked = 0
    for a in annotations:
        scene = make_scene(7, "eval", a["image_id"])
        question, answer = questions[a["question_id"]], a["multiple_choice_answer"]
        if question == "How many shapes are there?":
            assert answer == str(len(scene.shapes))
        elif question == "What color is the background?":
            assert answer == scene.background
        elif question.startswith("What color is the "):
            assert answer == scene.the(kind=question.removeprefix("What color is the ").rstrip("?")).color
        else:
            continue
        checked += 1
    assert checked >= 5


def test_demo_test_files_test2015_contains_test_dev(demo_root: Path) -> None:
    every = [json.loads(line) for line in (demo_root / TEST_ALL).read_text().splitlines()]
    dev = [json.loads(line) for line in (demo_root / TEST_DEV).read_text().splitlines()]
    assert 40 <= len(dev) < len(every)
    assert [x for x in every if x in dev] == dev
    for line in every:
        assert set(line) == {"question_id", "image", "text", "category"} and line["text"].endswith(LLAVA_SUFFIX)
        assert line["image"] == f"COCO_test2015_{line['question_id'] // 1000:012d}.jpg"
        assert (demo_root / "vqav2/test2015" / line["image"]).is_file()


def test_demo_ground_truth_scores_100_under_both_protocols(demo_root: Path) -> None:
    task = VQAv2ValTask()
    samples = task.load(demo_root)
    truth = {s.id: Response(text=s.metadata["multiple_choice_answer"]) for s in samples}
    for settings in (None, load_protocol("lmms-eval").settings_for(task), {"prediction_processor": "none"}):
        assert task.score(samples, truth, settings).metrics["overall"].value == pytest.approx(100.0)
    wrong = task.score(samples, {s.id: Response(text="purple") for s in samples})
    assert wrong.metrics["overall"].value < 20


def test_demo_export_round_trip(demo_root: Path, tmp_path: Path) -> None:
    task = VQAv2Task()
    samples = task.load(demo_root)
    written = task.export(samples, {s.id: Response(text="Yes.") for s in samples}, demo_root, tmp_path / "x.json")
    data = json.loads(written.read_text())
    assert len(data) == len((demo_root / TEST_ALL).read_text().splitlines())
    assert sum(d["answer"] == "yes" for d in data) == len(samples)
    assert sum(d["answer"] == "" for d in data) == len(data) - len(samples)


def test_demo_is_deterministic_and_fast(tmp_path: Path) -> None:
    def tree(root: Path) -> dict[str, bytes]:
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    start = time.perf_counter()
    for name in ("a", "b"):
        vqa_demo.write_val_demo(tmp_path / name, 3)
        vqa_demo.write_test_demo(tmp_path / name, 3)
    assert time.perf_counter() - start < 2.0
    assert tree(tmp_path / "a") == tree(tmp_path / "b")
    vqa_demo.write_val_demo(tmp_path / "c", 4)
    assert (tmp_path / "c" / ANNOTATIONS).read_bytes() != (tmp_path / "a" / ANNOTATIONS).read_bytes()
