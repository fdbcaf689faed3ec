"""LLaVA-Bench-in-the-Wild: the review message (caption quirk included), both parsers, the summarizer's
rounding with (-1, -1) averaged in, runs, judge failures, positional pairing, prepare and demo data.

The judge is ``ReplayJudge`` (tests/helpers/replay_judge.py), a stand-in for GPT-4 answering from scripted replies.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from harness.data.check import check_task
from harness.errors import DataError, UsageError
from harness.judging.contract import Judge
from harness.protocol import load_protocol
from harness.types import Response, Sample, TaskResult
from tasks.llava_bench import LlavaBenchTask
from tasks.llava_bench import demo as bench_demo
from tasks.llava_bench.prepare import prepare_root
from tasks.llava_bench.scorer import caption_text, parse_lmms_eval, parse_official, summarize
from tests.helpers.replay_judge import ReplayJudge

SYSTEM = "You are a helpful and precise assistant for checking the quality of the answer."
LLAVA = load_protocol("llava15").settings_for(LlavaBenchTask())
LMMS = load_protocol("lmms-eval").settings_for(LlavaBenchTask())
RULES = {
    "llava_bench_conv": {"role": "Assistant", "prompt": "Rate the two chats."},
    "llava_bench_detail": {"role": "Helper", "prompt": "Rate the two descriptions."},
    "llava_bench_complex": {"role": "Assistant", "prompt": "Rate the two arguments."},
}
QUESTIONS = [
    {"image": "001.jpg", "text": "What is it?", "category": "conv", "question_id": 0},
    {"image": "001.jpg", "text": "Describe it.", "category": "detail", "question_id": 1},
    {"image": "002.jpg", "text": "Why is it funny?", "category": "complex", "question_id": 2},
    {"image": "002.jpg", "text": "What color?", "category": "conv", "question_id": 3},
]
CONTEXT = [
    {"id": "001", "image": "001.jpg", "caption": "A cat."},
    {"id": "002", "image": "002.jpg", "caption": ["A dog", "on a mat."]},
]
REFERENCES = [
    {"question_id": q["question_id"], "text": f"reference {q['question_id']}", "answer_id": f"r{i}"}
    for i, q in enumerate(QUESTIONS)
]


def jsonl(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def write_root(root: Path, rules: bool = True, references: list[dict] = REFERENCES) -> Path:
    folder = root / "llava-bench-in-the-wild"
    jsonl(folder / "questions.jsonl", QUESTIONS)
    jsonl(folder / "context.jsonl", CONTEXT)
    jsonl(folder / "answers_gpt4.jsonl", references)
    if rules:
        (folder / "rule.json").write_text(json.dumps(RULES), encoding="utf-8")
    return root


@pytest.fixture
def task() -> LlavaBenchTask:
    return LlavaBenchTask()


@pytest.fixture
def samples(tmp_path: Path, task: LlavaBenchTask) -> list[Sample]:
    return task.load(write_root(tmp_path))


def answers(samples: list[Sample]) -> dict[str, Response]:
    return {s.id: Response(text=f"model answer {s.id}") for s in samples}


def replay(tuples: dict[str, list[str]], **kwargs) -> ReplayJudge:
    """Recorded reviews keyed by the model answer shown as Assistant 2."""
    return ReplayJudge({f"model answer {qid}\n\n[End of": replies for qid, replies in tuples.items()}, **kwargs)


# ----------------------------------------------------------------------------------------------
# message


def _expected_content(caption: str, qid: int, question: str, category: str) -> str:
    """The user message of eval_gpt_review_bench.py as fixed on 2023-08-16, written out by hand."""
    role, prompt = RULES[f"llava_bench_{category}"]["role"], RULES[f"llava_bench_{category}"]["prompt"]
    return (
        f"[Context]\n{caption}\n\n"
        f"[Question]\n{question}\n\n"
        f"[{role} 1]\nreference {qid}\n\n[End of {role} 1]\n\n"
        f"[{role} 2]\nmodel answer {qid}\n\n[End of {role} 2]\n\n"
        f"[System]\n{prompt}\n\n"
    )


@pytest.mark.parametrize("protocol", ["llava15", "lmms-eval"])
def test_review_messages_byte_for_byte(samples: list[Sample], task: LlavaBenchTask, protocol: str) -> None:
    """A string caption reaches the judge as it is, a list joined by newlines, under both protocols."""
    settings = {**(LLAVA if protocol == "llava15" else LMMS), "judge_runs": 1}
    judge = replay({"0": ["8 7"], "1": ["8 7"], "2": ["8 7"], "3": ["8 7"]})
    task.score(samples, answers(samples), settings, judge)
    by_item = {c.content: c for c in judge.calls}
    expected = [
        _expected_content("A cat.", 0, "What is it?", "conv"),
        _expected_content("A cat.", 1, "Describe it.", "detail"),
        _expected_content("A dog\non a mat.", 2, "Why is it funny?", "complex"),
        _expected_content("A dog\non a mat.", 3, "What color?", "conv"),
    ]
    assert sorted(by_item) == sorted(expected)
    system = [{"role": "system", "content": SYSTEM}] if protocol == "llava15" else []
    for content in expected:
        assert by_item[content].messages == [*system, {"role": "user", "content": content}]


def test_caption_text() -> None:
    assert caption_text("A cat.") == "A cat."
    assert caption_text(["A dog", "on a mat."]) == "A dog\non a mat."
    assert caption_text([]) == ""


# ----------------------------------------------------------------------------------------------
# parse


@pytest.mark.parametrize(
    ("review", "pair"),
    [
        ("8 7", (8.0, 7.0)),
        ("8,7", (8.0, 7.0)),
        ("8, 7", (-1.0, -1.0)),  # comma -> space gives "8  7": three pieces
        ("8.5 6\nAssistant 1 is better.", (8.5, 6.0)),
        ("Assistant 1: 8", (-1.0, -1.0)),
        ("Assistant 1: 8 Assistant 2: 7", (-1.0, -1.0)),
        ("8 7 ", (-1.0, -1.0)),
        ("", (-1.0, -1.0)),
        ("10 nine", (-1.0, -1.0)),
    ],
)
def test_official_parse(review: str, pair: tuple[float, float]) -> None:
    assert parse_official(review) == pair


@pytest.mark.parametrize(
    ("review", "pair"),
    [
        ("8, 7", (8.0, 7.0)),
        ("  9 6\nwhy", (9.0, 6.0)),
        ("Assistant 1: 8 Assistant 2: 7", (1.0, 8.0)),
        ("8;7", (8.0, 7.0)),
        ("Scores: 7", (-1.0, -1.0)),
    ],
)
def test_lmms_eval_parse(review: str, pair: tuple[float, float]) -> None:
    assert parse_lmms_eval(review) == pair


def test_unparsed_pairs_are_averaged_in() -> None:
    s = summarize([(8.0, 6.0), (-1.0, -1.0)])
    assert (s.reference, s.model, s.relative) == (3.5, 2.5, 71.4)


def test_means_are_rounded_to_three_decimals_before_the_ratio() -> None:
    # means 8.7 and 5.63333...: 5.633 / 8.7 -> 64.7 (unrounded means would give 64.8)
    pairs = [(8.7, 5.0), (8.7, 6.0), (8.7, 5.9)]
    assert summarize(pairs).model == 5.633 and summarize(pairs).relative == 64.7


# ----------------------------------------------------------------------------------------------
# scoring


REVIEWS = {"0": ["8 6", "8 8"], "1": ["10 5", "10 4"], "2": ["9 9", "8, 8"], "3": ["6 3", "6 3"]}


def test_three_categories_two_runs_hand_worked(samples: list[Sample], task: LlavaBenchTask) -> None:
    result = task.score(samples, answers(samples), {**LLAVA, "judge_runs": 2}, replay(REVIEWS))
    # run 1: ref 33/4 = 8.25, model 23/4 = 5.75 -> 69.7; run 2: (8+10-1+6)/4 = 5.75, (8+4-1+3)/4 = 3.5 -> 60.9
    run1, run2 = result.breakdowns["run 1"], result.breakdowns["run 2"]
    assert run1["all relative"].value == 69.7 and run2["all relative"].value == 60.9
    assert result.metrics["relative"].value == pytest.approx((69.7 + 60.9) / 2)
    assert run1["conv relative"].value == round(100 * 4.5 / 7, 1)  # (6+3)/2 over (8+6)/2
    assert run2["complex relative"].value == 100.0  # (-1, -1) over (-1, -1)
    assert result.metrics["relative_detail"].value == pytest.approx((50.0 + 40.0) / 2)
    assert result.metrics["relative_complex"].value == pytest.approx(100.0)
    assert result.metrics["reference_score"].value == pytest.approx((82.5 + 57.5) / 2)
    assert result.metrics["model_score"].value == pytest.approx((57.5 + 35.0) / 2)
    assert run1["all reference x10"].value == 82.5 and run1["all model x10"].value == 57.5
    assert result.n_parse_failures == 1 and any("(-1, -1)" in n for n in result.notes)
    assert [c.run for c in result_calls(task, samples)] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert result.headline == ["relative"]


def test_statistics_recompute_the_relative_score_without_rounding(samples: list[Sample], task: LlavaBenchTask) -> None:
    from harness.results.schema import sample_records
    from harness.stats.bootstrap import bootstrap
    from harness.stats.intervals import add_intervals

    responses = answers(samples)
    result = task.score(samples, responses, {**LLAVA, "judge_runs": 2}, replay(REVIEWS))
    records = sample_records(task.name, samples, result, responses)
    intervals = bootstrap(task.statistics(records))
    # run 1: 100 x 5.75 / 8.25 = 69.697; run 2: 100 x 3.5 / 5.75 = 60.870 (the summarizer rounds to 69.7, 60.9)
    assert intervals["relative"].value == pytest.approx((100 * 5.75 / 8.25 + 100 * 3.5 / 5.75) / 2)
    assert intervals["relative_detail"].value == pytest.approx(result.metrics["relative_detail"].value)
    add_intervals(task, result, records)
    relative = result.metrics["relative"]
    assert relative.value == pytest.approx((69.7 + 60.9) / 2)  # the official number is kept
    assert relative.stderr and "model / reference" in relative.method


def result_calls(task: LlavaBenchTask, samples: list[Sample]) -> list:
    judge = replay(REVIEWS)
    task.score(samples, answers(samples), {**LLAVA, "judge_runs": 2}, judge)
    return judge.calls


def test_default_is_three_runs_and_concurrency_changes_nothing(samples: list[Sample], task: LlavaBenchTask) -> None:
    reviews = {k: [*v, v[0]] for k, v in REVIEWS.items()}
    one = task.score(samples, answers(samples), LLAVA, replay(reviews))
    four = task.score(samples, answers(samples), LLAVA, replay(reviews, concurrency=4))
    assert list(one.breakdowns) == ["run 1", "run 2", "run 3"]
    assert one.metrics == four.metrics and one.breakdowns == four.breakdowns


def test_failed_review_is_left_out_and_noted(samples: list[Sample], task: LlavaBenchTask) -> None:
    reviews = {**REVIEWS, "1": ["10 5"]}  # run 2 of question 1 fails
    result = task.score(samples, answers(samples), {**LLAVA, "judge_runs": 2}, replay(reviews))
    run2 = result.breakdowns["run 2"]
    assert run2["all relative"].value == round(100 * round(10 / 3, 3) / round(13 / 3, 3), 1)
    assert "detail relative" not in run2
    assert result.metrics["judge_failures"].value == 1 and any("1 reviews failed" in n for n in result.notes)
    detail = next(s for s in result.samples if s.sample_id == "1").detail
    assert detail["tuples"] == [[10.0, 5.0], None] and detail["judge_errors"][1]


def test_missing_answers_and_errors_are_left_out(samples: list[Sample], task: LlavaBenchTask) -> None:
    responses = answers(samples)
    del responses["2"]
    responses["3"] = Response(error="image unreadable")
    judge = replay(REVIEWS)
    result = task.score(samples, responses, {**LLAVA, "judge_runs": 1}, judge)
    assert len(judge.calls) == 2
    assert result.metrics["relative"].value == round(100 * 5.5 / 9, 1)
    assert result.n_missing == 1 and result.n_errors == 1
    assert any("not reviewed (no answer)" in n for n in result.notes)


def test_lmms_eval_protocol(samples: list[Sample], task: LlavaBenchTask) -> None:
    judge = replay(REVIEWS)
    result = task.score(samples, answers(samples), LMMS, judge)
    assert [c.messages[0]["role"] for c in judge.calls] == ["user"] * 4
    assert judge.calls[0].content.startswith("[Context]\nA cat.\n\n[Question]")
    assert {(c.temperature, c.max_tokens) for c in judge.calls} == {(0.0, 1024)}
    assert list(result.breakdowns) == ["run 1"]
    assert result.metrics["relative"].value == 69.7


def test_without_a_judge_nothing_is_scored(samples: list[Sample], task: LlavaBenchTask) -> None:
    result = task.score(samples, answers(samples), LLAVA)
    assert result.metrics == {} and result.notes[0].startswith("not scored: needs a judge")


def test_bad_settings(samples: list[Sample], task: LlavaBenchTask) -> None:
    with pytest.raises(UsageError):
        task.score(samples, answers(samples), {**LLAVA, "judge_runs": 0}, replay(REVIEWS))
    with pytest.raises(UsageError):
        task.score(samples, answers(samples), {**LLAVA, "scorer": "?"}, replay(REVIEWS))


# ----------------------------------------------------------------------------------------------
# loading and pairing


def test_load_pairs_references_by_position(tmp_path: Path, task: LlavaBenchTask) -> None:
    swapped = [REFERENCES[1], REFERENCES[0], *REFERENCES[2:]]
    samples = task.load(write_root(tmp_path, references=swapped))
    assert [s.metadata["reference"] for s in samples[:2]] == ["reference 1", "reference 0"]
    result = task.score(samples, answers(samples), {**LLAVA, "judge_runs": 1}, replay(REVIEWS))
    assert any("2 reference lines carry another question_id" in n for n in result.notes)


def test_match_answers_pairs_by_line_and_notes_mismatches(samples: list[Sample], task: LlavaBenchTask) -> None:
    records = [
        {"question_id": 1, "text": "a"},
        {"question_id": 0, "text": "b"},
        {"question_id": 2, "text": "c"},
        {"question_id": 3, "text": "d"},
        {"question_id": 4, "text": "extra"},
    ]
    matched = task.match_answers(samples, records)
    assert matched == {"0": "a", "1": "b", "2": "c", "3": "d"}
    responses = {sid: Response(text=f"model answer {sid}") for sid in matched}
    result = task.score(samples, responses, {**LLAVA, "judge_runs": 1}, replay(REVIEWS))
    assert any("2 answer lines carry another question_id" in n for n in result.notes)


def test_missing_rule_file_and_category(tmp_path: Path, task: LlavaBenchTask) -> None:
    samples = task.load(write_root(tmp_path, rules=False))
    with pytest.raises(DataError, match=r"rule\.json"):
        task.score(samples, answers(samples), LLAVA, replay(REVIEWS))
    assert [st.spec.path for st in check_task(task, tmp_path, "score") if not st.present] == [
        "llava-bench-in-the-wild/rule.json"
    ]
    (tmp_path / "llava-bench-in-the-wild/rule.json").write_text(
        json.dumps({"llava_bench_conv": RULES["llava_bench_conv"]})
    )
    with pytest.raises(DataError, match="llava_bench_detail"):
        task.load(tmp_path)


def test_requests(samples: list[Sample], task: LlavaBenchTask) -> None:
    request = task.build_request(samples[0], LLAVA)
    assert request.prompt == "<image>\nWhat is it?" and request.generation.max_new_tokens == 1024
    lmms = task.build_request(samples[0], LMMS)
    assert lmms.prompt == "<image>\nWhat is it?" and lmms.generation.stop == ("ASSISTANT:",)


# ----------------------------------------------------------------------------------------------
# prepare and demo


def jpeg(color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), color).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_prepare_from_the_lmms_lab_schema(tmp_path: Path, task: LlavaBenchTask) -> None:
    img1, img2 = jpeg((200, 0, 0)), jpeg((0, 0, 200))
    rows = [
        {
            "question_id": 0,
            "question": "What is it?",
            "image": {"bytes": img1, "path": None},
            "caption": "A cat.",
            "gpt_answer": "A cat.",
            "category": "conv",
            "image_id": "001",
        },
        {
            "question_id": 1,
            "question": "Describe it.",
            "image": {"bytes": img1, "path": None},
            "caption": "A cat.",
            "gpt_answer": "A long text.",
            "category": "detail",
            "image_id": "001",
        },
        {
            "question_id": 2,
            "question": "Why?",
            "image": {"bytes": img2, "path": None},
            "caption": "A dog.",
            "gpt_answer": "Because.",
            "category": "complex",
            "image_id": "002",
        },
    ]
    path = tmp_path / "src/data/train-00000-of-00001.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    root = tmp_path / "root"
    prepare_root(tmp_path / "src", root)
    folder = root / "llava-bench-in-the-wild"
    lines = [json.loads(x) for x in (folder / "questions.jsonl").read_text().splitlines()]
    assert lines[2] == {"image": "002.jpg", "text": "Why?", "category": "complex", "question_id": 2}
    contexts = [json.loads(x) for x in (folder / "context.jsonl").read_text().splitlines()]
    assert contexts == [
        {"id": "001", "image": "001.jpg", "caption": "A cat."},
        {"id": "002", "image": "002.jpg", "caption": "A dog."},
    ]
    assert (folder / "images/002.jpg").read_bytes() == img2
    assert [st.spec.path for st in check_task(task, root, "run") if not st.present] == [
        "llava-bench-in-the-wild/rule.json"
    ]
    samples = task.load(root)
    assert [s.metadata["reference"] for s in samples] == ["A cat.", "A long text.", "Because."]


def test_demo_data_loads_and_scores(tmp_path: Path, task: LlavaBenchTask) -> None:
    bench_demo.write_demo(tmp_path, 5)
    samples = task.load(tmp_path)
    assert len(samples) == 21 and all(Path(s.images[0].path).is_file() for s in samples)
    assert {s.metadata["category"] for s in samples} == {"conv", "detail", "complex"}
    assert all(isinstance(s.metadata["caption"], str) and s.metadata["reference"] for s in samples)
    rules = json.loads((tmp_path / "llava-bench-in-the-wild/rule.json").read_text())
    assert set(rules) == {"llava_bench_conv", "llava_bench_detail", "llava_bench_complex"}
    reviews = {s.id: ["8 6"] for s in samples}
    result = task.score(samples, answers(samples), {**LLAVA, "judge_runs": 1}, replay(reviews))
    assert result.metrics["relative"].value == 75.0
    bench_demo.write_demo(tmp_path / "again", 5)
    for name in ("questions.jsonl", "context.jsonl", "answers_gpt4.jsonl", "rule.json"):
        a = (tmp_path / "llava-bench-in-the-wild" / name).read_bytes()
        assert a == (tmp_path / "again/llava-bench-in-the-wild" / name).read_bytes()


def test_a_judge_that_always_fails_leaves_no_number_behind(samples: list[Sample], task: LlavaBenchTask) -> None:
    judge = ReplayJudge({})
    assert isinstance(judge, Judge)
    result = task.score(samples, answers(samples), LLAVA, judge)
    assert set(result.metrics) == {"judge_failures"} and result.metrics["judge_failures"].value == 12
    assert TaskResult.model_validate_json(result.model_dump_json()) == result
