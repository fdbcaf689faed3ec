"""MM-Vet: the official grader's message, parse and retry schedule, lmms-eval's variant, the aggregation
(capabilities, capability sets, runs), judge failures, loading, answers files, prepare and demo data.

The judge is ``ReplayJudge`` (tests/helpers/replay_judge.py), a stand-in for GPT-4 answering from scripted replies.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from harness.data.check import check_task
from harness.errors import DataError, UsageError
from harness.judging.contract import Judge
from harness.protocol import load_protocol
from harness.types import Response, Sample, TaskResult
from tasks.mmvet import MMVetTask
from tasks.mmvet import demo as mmvet_demo
from tasks.mmvet.prepare import prepare_root
from tasks.mmvet.scorer import (
    cap_set_name,
    grade_lmms_eval,
    grade_official,
    lmms_eval_query,
    official_query,
    read_score,
)
from tests.helpers.replay_judge import ReplayJudge

SUFFIX = "\nPredict the correctness of the answer (digit): "
INSTRUCTION = (
    "Grade it.\n\nQuestion | Ground truth | Prediction | Correctness\n--- | --- | --- | ---\nq | a | a | 1.0\n"
)
LLAVA = load_protocol("llava15").settings_for(MMVetTask())
LMMS = load_protocol("lmms-eval").settings_for(MMVetTask())

# id -> (question, answer, capabilities, prediction)
ITEMS = {
    "v1_0": ("What is x?", "-1<AND>-5", ["ocr", "math"], "x is -1"),
    "v1_1": ("What animal is it?", "cat<OR>kitten", ["rec"], "a cat"),
    "v1_2": ("What is written on the sign?", "stop", ["rec", "ocr"], "go"),
    "v1_3": ("What is the total?", "12", ["math", "ocr"], "12"),
}


def write_root(root: Path, items: dict[str, tuple[str, str, list[str], str]] = ITEMS, prompt: bool = True) -> Path:
    data = {
        qid: {"imagename": f"{qid}.png", "question": q, "answer": a, "capability": caps, "imagesource": "web"}
        for qid, (q, a, caps, _) in items.items()
    }
    (root / "mm-vet").mkdir(parents=True, exist_ok=True)
    (root / "mm-vet/mm-vet.json").write_text(json.dumps(data, indent=4), encoding="utf-8")
    if prompt:
        (root / "mm-vet/mmvet_judge_prompt.txt").write_text(INSTRUCTION, encoding="utf-8")
    return root


def row(qid: str) -> str:
    """The query row of an item, written out as the evaluator's join makes it."""
    q, a, _, p = ITEMS[qid]
    return q + " | " + a.replace("<AND>", " <AND> ").replace("<OR>", " <OR> ") + " | " + p + " | "


def predictions(items: dict[str, tuple[str, str, list[str], str]] = ITEMS) -> dict[str, Response]:
    return {qid: Response(text=p) for qid, (_, _, _, p) in items.items()}


@pytest.fixture
def task() -> MMVetTask:
    return MMVetTask()


@pytest.fixture
def samples(tmp_path: Path, task: MMVetTask) -> list[Sample]:
    return task.load(write_root(tmp_path))


# ----------------------------------------------------------------------------------------------
# message and parse


def test_official_query_pads_and_or_and_ends_with_an_empty_cell() -> None:
    query = official_query(INSTRUCTION, "What is x?", "-1<AND>-5<OR>5", "x = -1")
    assert query == INSTRUCTION + "\nWhat is x? | -1 <AND> -5 <OR> 5 | x = -1 | "
    assert "\n1.0\n\nWhat is x?" in query.replace(" | 1.0\n\n", "\n1.0\n\n")  # the file's newline + the join's


def test_lmms_eval_query_drops_the_blank_line_and_renames_the_header() -> None:
    query = lmms_eval_query(INSTRUCTION, "What is x?", "-1<AND>-5", "x = -1")
    assert query == (
        "Grade it.\ngpt_query_prompt | Ground truth | Prediction | Correctness\n--- | --- | --- | ---\n"
        "q | a | a | 1.0\n\nWhat is x? | -1 <AND> -5 | x = -1 |"
    )


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ("0.5", 0.5),
        ("1.0", 1.0),
        ("0", 0.0),
        ("0.7 because", 0.7),
        ("0.3\n", 0.3),
        ("1.1", None),
        ("-0.1", None),
        (" 0.7", None),  # the first piece is the empty text before the space
        ("0.7\nok", None),
        ("Correct", None),
        ("nan", None),
        ("", None),
    ],
)
def test_read_score_first_piece_in_range(reply: str, score: float | None) -> None:
    assert read_score(reply) == score


# ----------------------------------------------------------------------------------------------
# retry schedules


def scripted(*replies: str) -> ReplayJudge:
    return ReplayJudge({"Q | A | P | ": list(replies)}, index_by="order")


QUERY = official_query(INSTRUCTION, "Q", "A", "P")


def test_official_retry_starts_at_the_same_temperature() -> None:
    judge = scripted("x", "y", "0.5")
    grade = grade_official(judge, QUERY, run=0)
    assert [(c.content, c.temperature) for c in judge.calls] == [
        (QUERY, 0.0),
        (QUERY + SUFFIX, 0.0),
        (QUERY + SUFFIX, 0.5),
    ]
    assert {c.max_tokens for c in judge.calls} == {3}
    assert grade.score == 0.5 and grade.content == "0.5" and not grade.exhausted
    assert [c["asked"] for c in grade.calls] == ["query", "query + digit suffix", "query + digit suffix"]


def test_official_gives_zero_after_five_retries_without_reading_the_last() -> None:
    judge = scripted("a", "b", "c", "d", "e", "0.9 never read", "unused")
    grade = grade_official(judge, QUERY, run=2)
    assert len(judge.calls) == 6
    assert [c.temperature for c in judge.calls] == [0.0, 0.0, 0.5, 1.0, 1.5, 2.0]
    assert [c.content for c in judge.calls] == [QUERY] + [QUERY + SUFFIX] * 5
    assert {c.run for c in judge.calls} == {2}
    assert grade.score == 0.0 and grade.exhausted and grade.content == "0.9 never read"


def test_official_first_reply_read_needs_one_call() -> None:
    judge = scripted("0.4 ok")
    grade = grade_official(judge, QUERY, run=0)
    assert len(judge.calls) == 1 and grade.score == 0.4 and grade.content == "0.4"
    assert grade.calls[0]["text"] == "0.4 ok" and grade.calls[0]["model"] == "gpt-4"


def test_official_transport_failure_is_no_score() -> None:
    judge = scripted("garbage")  # the retry finds no recorded reply: an error reply
    grade = grade_official(judge, QUERY, run=0)
    assert grade.score is None and grade.error and not grade.exhausted and len(judge.calls) == 2


LMMS_QUERY = lmms_eval_query(INSTRUCTION, "Q", "A", "P")


def lmms_scripted(*replies: str) -> ReplayJudge:
    return ReplayJudge({"Q | A | P |": list(replies)}, index_by="order")


def test_lmms_eval_unreadable_reply_raises_temperature_with_an_unread_call() -> None:
    judge = lmms_scripted("x", "0.9 unread", "0.6")
    grade = grade_lmms_eval(judge, LMMS_QUERY, run=0)
    assert [c.temperature for c in judge.calls] == [0.0, 0.5, 0.5]
    assert {c.content for c in judge.calls} == {LMMS_QUERY} and {c.max_tokens for c in judge.calls} == {128}
    assert grade.score == 0.6


def test_lmms_eval_gives_zero_once_the_temperature_reaches_two() -> None:
    judge = lmms_scripted(*["bad"] * 10)
    grade = grade_lmms_eval(judge, LMMS_QUERY, run=0)
    assert [c.temperature for c in judge.calls] == [0.0, 0.5, 0.5, 1.0, 1.0, 1.5, 1.5, 2.0]
    assert grade.score == 0.0 and grade.exhausted


def test_lmms_eval_out_of_range_is_asked_again_at_the_same_temperature() -> None:
    judge = lmms_scripted("5", "2", "0.3")
    grade = grade_lmms_eval(judge, LMMS_QUERY, run=0)
    assert [c.temperature for c in judge.calls] == [0.0, 0.0, 0.0] and grade.score == 0.3


def test_lmms_eval_empty_replies_use_up_patience_then_zero() -> None:
    judge = lmms_scripted("", " ", "")
    grade = grade_lmms_eval(judge, LMMS_QUERY, run=0)
    assert len(judge.calls) == 3 and grade.score == 0.0 and grade.exhausted


# ----------------------------------------------------------------------------------------------
# aggregation

RUN_SCORES = {"v1_0": ["1.0", "0.5"], "v1_1": ["0.5", "0.5"], "v1_2": ["0.0", "0.2"], "v1_3": ["0.6", "0.6"]}


def replay_items(scores: dict[str, list[str]] = RUN_SCORES, **kwargs: Any) -> ReplayJudge:
    return ReplayJudge({row(qid): replies for qid, replies in scores.items()}, **kwargs)


def test_two_runs_hand_worked(samples: list[Sample], task: MMVetTask) -> None:
    judge = replay_items()
    result = task.score(samples, predictions(), {**LLAVA, "judge_runs": 2}, judge)
    m = result.metrics
    # run 1: 1.0 .5 0 .6 -> 52.5; run 2: .5 .5 .2 .6 -> 45
    assert m["total"].value == pytest.approx(48.75)
    assert [r.value for r in result.breakdowns["runs"].values()] == pytest.approx([52.5, 45.0])
    assert m["total_std"].value == pytest.approx(3.75)
    # ocr: (1.6/3, 1.3/3); math: (.8, .55); rec: (.25, .35)
    assert m["ocr"].value == pytest.approx(100 * (1.6 / 3 + 1.3 / 3) / 2)
    assert m["math"].value == pytest.approx(67.5)
    assert m["rec"].value == pytest.approx(30.0)
    assert list(m)[:4] == ["total", "ocr", "math", "rec"]  # capabilities most frequent first
    cap_int = result.breakdowns["capability_integration"]
    assert list(cap_int) == ["math_ocr", "rec", "ocr_rec"]
    assert {k: v.value for k, v in cap_int.items()} == pytest.approx({"math_ocr": 67.5, "rec": 50.0, "ocr_rec": 10.0})
    table = result.breakdowns["official_cap_score"]
    assert {k: v.value for k, v in table.items()} == pytest.approx(
        {"ocr": 48.3, "math": 67.5, "rec": 30.0, "total": 48.8, "std": 3.8, "run 1": 52.5, "run 2": 45.0}
    )
    assert result.breakdowns["official_cap_int_score"]["ocr_rec"].value == 10.0
    assert result.n_parse_failures == 0 and m["judge_failures"].value == 0
    assert result.headline == ["total"]


def test_statistics_recompute_the_mean_over_runs_and_resample_items_with_their_runs(
    samples: list[Sample], task: MMVetTask
) -> None:
    from harness.results.schema import sample_records
    from harness.stats.bootstrap import bootstrap
    from harness.stats.intervals import add_intervals

    responses = predictions()
    result = task.score(samples, responses, {**LLAVA, "judge_runs": 2}, replay_items())
    records = sample_records(task.name, samples, result, responses)
    intervals = bootstrap(task.statistics(records))
    for name in ("total", "ocr", "math", "rec"):
        assert intervals[name].value == pytest.approx(result.metrics[name].value), name
    assert intervals["total"].n_clusters == len(samples)  # one cluster per item (image), both runs inside it
    add_intervals(task, result, records)
    total = result.metrics["total"]
    assert total.stderr and total.ci_low <= total.value <= total.ci_high
    assert total.method.startswith("cluster bootstrap") and "mean over runs" in total.method


def test_runs_are_graded_one_after_the_other(samples: list[Sample], task: MMVetTask) -> None:
    judge = replay_items()
    task.score(samples, predictions(), {**LLAVA, "judge_runs": 2}, judge)
    assert [c.run for c in judge.calls] == [0, 0, 0, 0, 1, 1, 1, 1]
    expected = [[{"role": "user", "content": INSTRUCTION + "\n" + row(qid)}] for qid in [*ITEMS, *ITEMS]]
    assert [c.messages for c in judge.calls] == expected


def test_concurrent_grading_gives_the_same_result(samples: list[Sample], task: MMVetTask) -> None:
    one = task.score(samples, predictions(), {**LLAVA, "judge_runs": 2}, replay_items())
    four = task.score(samples, predictions(), {**LLAVA, "judge_runs": 2}, replay_items(concurrency=4))
    assert four.metrics == one.metrics and four.breakdowns == one.breakdowns


def test_sample_detail_records_every_call(samples: list[Sample], task: MMVetTask) -> None:
    scores = {**RUN_SCORES, "v1_2": ["wrong", "0.2"]}
    result = task.score(samples, predictions(), {**LLAVA, "judge_runs": 2}, replay_items(scores, index_by="order"))
    by_id = {s.sample_id: s for s in result.samples}
    detail = by_id["v1_2"].detail
    assert detail["scores"] == [0.2, None]  # the retry took the second reply; run 2 ran out of replies
    calls = detail["judge_calls"][0]
    assert [c["text"] for c in calls] == ["wrong", "0.2"] and calls[1]["asked"] == "query + digit suffix"
    assert all(c["prompt_hash"] and c["settings"]["max_tokens"] == 3 for c in calls)
    assert by_id["v1_0"].parsed == [1.0, 0.5] and by_id["v1_0"].score == 0.75
    assert detail["capability_set"] == "ocr_rec"


def test_failed_judge_call_is_left_out_counted_and_noted(samples: list[Sample], task: MMVetTask) -> None:
    scores = {**RUN_SCORES, "v1_2": ["0.0"]}  # run 2 of v1_2 has no recorded reply: an error
    result = task.score(samples, predictions(), {**LLAVA, "judge_runs": 2}, replay_items(scores))
    runs = [r.value for r in result.breakdowns["runs"].values()]
    assert runs == pytest.approx([52.5, 100 * 1.6 / 3])
    assert result.metrics["judge_failures"].value == 1
    assert any("1 gradings failed" in n for n in result.notes)
    assert result.n_parse_failures == 0


def test_exhausted_retries_count_as_parse_failures(samples: list[Sample], task: MMVetTask) -> None:
    scores = {**RUN_SCORES, "v1_1": ["?"] * 6}
    result = task.score(samples, predictions(), LLAVA, replay_items(scores, index_by="order"))
    assert result.n_parse_failures == 1
    assert result.metrics["total"].value == pytest.approx(100 * 1.6 / 4)
    assert any("no readable score" in n for n in result.notes)


def test_missing_answer_scores_zero_without_a_call(samples: list[Sample], task: MMVetTask) -> None:
    responses = predictions()
    del responses["v1_3"]
    responses["v1_1"] = Response(text="", error="CUDA out of memory")
    judge = replay_items()
    result = task.score(samples, responses, LLAVA, judge)
    assert len(judge.calls) == 2
    assert result.metrics["total"].value == pytest.approx(100 * 1.0 / 4)
    assert result.n_missing == 1 and result.n_errors == 1
    assert any("no answer" in n for n in result.notes)


def test_without_a_judge_nothing_is_scored(samples: list[Sample], task: MMVetTask) -> None:
    result = task.score(samples, predictions(), LLAVA, None)
    assert result.metrics == {} and result.notes == [
        "not scored: needs a judge (MM-Vet answers are graded by GPT-4; see --judge)"
    ]


def test_missing_prompt_file_is_named(tmp_path: Path, task: MMVetTask) -> None:
    samples = task.load(write_root(tmp_path, prompt=False))
    with pytest.raises(DataError, match=r"mmvet_judge_prompt\.txt"):
        task.score(samples, predictions(), LLAVA, replay_items())
    missing = [st.spec.path for st in check_task(task, tmp_path, "score") if not st.present]
    assert missing == ["mm-vet/mmvet_judge_prompt.txt"]
    spec = next(f for f in task.data_files() if f.path == "mm-vet/mmvet_judge_prompt.txt")
    assert "github.com/yuweihao/MM-Vet" in spec.source


def test_bad_settings(samples: list[Sample], task: MMVetTask) -> None:
    with pytest.raises(UsageError):
        task.score(samples, predictions(), {**LLAVA, "judge_runs": 0}, replay_items())
    with pytest.raises(UsageError):
        task.score(samples, predictions(), {**LLAVA, "scorer": "vibes"}, replay_items())


def test_lmms_eval_protocol_end_to_end(samples: list[Sample], task: MMVetTask) -> None:
    rows = {qid: lmms_eval_query(INSTRUCTION, *ITEMS[qid][:2], ITEMS[qid][3]) for qid in ITEMS}
    judge = ReplayJudge({r.split("\n")[-1]: [s[0]] for r, s in zip(rows.values(), RUN_SCORES.values())})
    result = task.score(samples, predictions(), LMMS, judge)
    assert result.metrics["total"].value == pytest.approx(52.5)
    assert [c.content for c in judge.calls] == list(rows.values())
    assert {c.max_tokens for c in judge.calls} == {128}


def test_cap_set_names_are_sorted() -> None:
    assert cap_set_name(["spat", "ocr", "rec"]) == "ocr_rec_spat" == cap_set_name(["rec", "spat", "ocr"])


# ----------------------------------------------------------------------------------------------
# loading, requests, answers files


def test_load_keeps_file_order_and_fields(samples: list[Sample], tmp_path: Path) -> None:
    assert [s.id for s in samples] == list(ITEMS)
    s = samples[0]
    assert s.question == "What is x?" and s.target == "-1<AND>-5" and s.metadata["capability"] == ["ocr", "math"]
    assert s.images[0].path == str(tmp_path / "mm-vet/images/v1_0.png")
    assert s.metadata["judge_instruction"] == INSTRUCTION


def test_malformed_question_names_the_item(tmp_path: Path, task: MMVetTask) -> None:
    write_root(tmp_path)
    data = json.loads((tmp_path / "mm-vet/mm-vet.json").read_text())
    data["v1_2"]["capability"] = "rec"
    (tmp_path / "mm-vet/mm-vet.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"v1_2.*capability"):
        task.load(tmp_path)


def test_requests_per_protocol(samples: list[Sample], task: MMVetTask) -> None:
    llava = task.build_request(samples[0], LLAVA)
    assert llava.prompt == "<image>\nWhat is x?"
    assert llava.generation.max_new_tokens == 1024 and llava.generation.temperature == 0.0
    lmms = task.build_request(samples[0], LMMS)
    assert lmms.prompt == (
        "<image>\nFirst please perform reasoning, and think step by step to provide best answer to the following "
        "question: \n\nWhat is x?"
    )
    assert lmms.generation.temperature == 0.2 and lmms.generation.max_new_tokens == 1024


def test_match_answers_integer_and_v1_ids(samples: list[Sample], task: MMVetTask) -> None:
    records = [
        {"question_id": 0, "text": "first"},
        {"question_id": "v1_1", "text": "b"},
        {"question_id": 0, "text": "later wins"},
        {"question_id": 99, "text": "unknown"},
        {"question_id": "x", "text": "junk"},
    ]
    assert task.match_answers(samples, records) == {"v1_0": "later wins", "v1_1": "b"}


def test_score_path_reads_a_results_file(tmp_path: Path, task: MMVetTask) -> None:
    root = write_root(tmp_path / "root")
    results = tmp_path / "model.json"
    results.write_text(json.dumps({qid: p for qid, (_, _, _, p) in ITEMS.items()} | {"v1_77": "?"}, indent=2))
    result = task.score_path(results, root, LLAVA, replay_items())
    assert result is not None and result.metrics["total"].value == pytest.approx(52.5)
    assert any("1 answers name no MM-Vet question" in n for n in result.notes)
    with pytest.raises(UsageError, match="answers JSONL"):
        task.score_path(results, root)
    jsonl = tmp_path / "answers.jsonl"
    jsonl.write_text('{"question_id": 0, "text": "a"}\n{"question_id": 1, "text": "b"}\n')
    assert task.score_path(jsonl, root) is None
    assert task.score_path(tmp_path, root) is None


# ----------------------------------------------------------------------------------------------
# prepare and demo


def png(color: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), color).save(buffer, format="PNG")
    return buffer.getvalue()


def test_prepare_from_the_lmms_lab_schema(tmp_path: Path, task: MMVetTask) -> None:
    rows = [
        {
            "question_id": "v1_0",
            "image": {"bytes": png((1, 2, 3)), "path": "v1_0.png"},
            "question": "What is x?",
            "answer": "-1<AND>-5",
            "image_source": "web",
            "capability": "ocr,math",
        },
        {
            "question_id": "v1_1",
            "image": {"bytes": png((4, 5, 6)), "path": None},
            "question": "Who?",
            "answer": "Tom",
            "image_source": "web",
            "capability": "rec,know",
        },
    ]
    source = tmp_path / "src/data/test-00000-of-00001.parquet"
    source.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), source)
    root = tmp_path / "root"
    prepare_root(tmp_path / "src", root)
    data = json.loads((root / "mm-vet/mm-vet.json").read_text())
    assert data == {
        "v1_0": {
            "imagename": "v1_0.png",
            "question": "What is x?",
            "answer": "-1<AND>-5",
            "capability": ["ocr", "math"],
            "imagesource": "web",
        },
        "v1_1": {
            "imagename": "v1_1.png",
            "question": "Who?",
            "answer": "Tom",
            "capability": ["rec", "know"],
            "imagesource": "web",
        },
    }
    assert (root / "mm-vet/images/v1_1.png").read_bytes() == png((4, 5, 6))
    missing = [st.spec.path for st in check_task(task, root, "run") if not st.present]
    assert missing == ["mm-vet/mmvet_judge_prompt.txt"]
    assert [s.id for s in task.load(root)] == ["v1_0", "v1_1"]


def test_demo_data_loads_and_scores(tmp_path: Path, task: MMVetTask) -> None:
    mmvet_demo.write_demo(tmp_path, 3)
    samples = task.load(tmp_path)
    assert len(samples) == 20 and all(Path(s.images[0].path).is_file() for s in samples)
    instruction = samples[0].metadata["judge_instruction"]
    assert instruction.endswith("\n") and "\n\nQuestion | Ground truth | Prediction | Correctness\n" in instruction
    caps = {c for s in samples for c in s.metadata["capability"]}
    assert caps == {"rec", "ocr", "know", "gen", "spat", "math"}
    assert any("<AND>" in str(s.target) for s in samples) and any("<OR>" in str(s.target) for s in samples)
    assert len({cap_set_name(s.metadata["capability"]) for s in samples}) >= 5
    with Image.open(samples[0].images[0].path) as img:
        assert img.size == (96, 96)
    # a judge that says 1.0 for the first ten questions and 0.0 for the rest
    answers = {s.id: Response(text=f"answer {s.id}") for s in samples}
    replies = {f"| answer {s.id} | ": ["1.0" if i < 10 else "0.0"] for i, s in enumerate(samples)}
    result = task.score(samples, answers, LLAVA, ReplayJudge(replies))
    assert result.metrics["total"].value == pytest.approx(50.0)
    mmvet_demo.write_demo(tmp_path / "again", 3)
    assert (tmp_path / "again/mm-vet/mm-vet.json").read_bytes() == (tmp_path / "mm-vet/mm-vet.json").read_bytes()


def test_a_judge_that_always_fails_leaves_no_number_behind(samples: list[Sample], task: MMVetTask) -> None:
    judge = ReplayJudge({})
    assert isinstance(judge, Judge)
    result = task.score(samples, predictions(), {**LLAVA, "judge_runs": 2}, judge)
    assert "total" not in result.metrics and result.metrics["judge_failures"].value == 8
    assert result.breakdowns["runs"] == {} and result.breakdowns["official_cap_score"] == {}
    assert TaskResult.model_validate_json(result.model_dump_json()) == result
