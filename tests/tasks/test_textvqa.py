"""TextVQA: question recovery, annotation matching, eval_textvqa.py scoring, protocols, demo data."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from harness.data.readers import read_jsonl
from harness.errors import DataError, UsageError
from harness.protocol import load_protocol
from harness.registry import get_task
from harness.types import Response, Sample
from tasks.common.vqa_eval import evalai_answer
from tasks.demo.scenes import make_scene
from tasks.textvqa import ANNOTATIONS, LLAVA_QUESTIONS, LLAVA_SUFFIX, TextVQATask
from tasks.textvqa import demo as textvqa_demo
from tasks.textvqa.scorer import ocr_tokens, recover_question
from tests.helpers import score_cli
from tests.helpers.paths import REALDATA

# ----------------------------------------------------------------------------------------------
# question recovery (eval_textvqa.py's prompt_processor)


def test_three_line_prompt_gives_the_first_line() -> None:
    prompt = "What Brand is this?\nReference OCR token: DAKOTA, DIGITAL\nAnswer the question using a single word."
    assert recover_question(prompt) == "what brand is this?"


def test_ocr_first_prompt_gives_the_second_line() -> None:
    prompt = "Reference OCR token: A, B\nWhat is WRITTEN?\nAnswer the question using a single word or phrase."
    assert recover_question(prompt) == "what is written?"


def test_two_line_prompt_gives_the_first_line() -> None:
    assert recover_question("What does it say?\nAnswer the question using a single word or phrase.") == (
        "what does it say?"
    )
    # two lines win even with an OCR line in them (the OCR branch needs exactly three lines)
    assert recover_question("Q?\nReference OCR token: x") == "q?"


def test_old_ocr_tokens_form() -> None:
    prompt = "OCR tokens: stop, sign Question: What does the SIGN say?\nmore Short answer:"
    assert recover_question(prompt) == "what does the sign say?\nmore"


@pytest.mark.parametrize(
    "prompt",
    [
        "just one line",
        "a\nb\nc",  # three lines without the OCR marker
        "Q?\nReference OCR token: x\nsuffix\nextra",  # four lines
        "OCR tokens: a, b but no question",
    ],
)
def test_other_prompts_are_errors(prompt: str) -> None:
    with pytest.raises(ValueError):
        recover_question(prompt)


def test_ocr_tokens_of_a_prompt() -> None:
    assert ocr_tokens("Q?\nReference OCR token: A, B-C, 55.6%\nS") == ["A", "B-C", "55.6%"]
    assert ocr_tokens("Q?\nReference OCR token: \nS") == []
    assert ocr_tokens("Q?\nS") is None


# ----------------------------------------------------------------------------------------------
# loading and matching


def _item(qid: int, image: str, question: str, answers: list[str]) -> dict[str, Any]:
    return {"question": question, "image_id": image, "answers": answers, "question_id": qid, "set_name": "val"}


def _line(image: str, question: str, tokens: str = "A, B") -> dict[str, Any]:
    text = f"{question[:1].upper()}{question[1:]}\nReference OCR token: {tokens}{LLAVA_SUFFIX}"
    return {"question_id": image, "image": f"{image}.jpg", "text": text, "category": "default"}


def _write(root: Path, items: list[dict[str, Any]], lines: list[dict[str, Any]] | list[str]) -> Path:
    (root / "textvqa").mkdir(parents=True, exist_ok=True)
    data = {"dataset_type": "val", "dataset_name": "textvqa", "dataset_version": "0.5.1", "data": items}
    (root / ANNOTATIONS).write_text(json.dumps(data))
    text = "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines)
    (root / LLAVA_QUESTIONS).write_text(text)
    return root


def _standard(tmp_path: Path):
    items = [
        _item(1, "img1", "what brand is this?", ["coca cola"] * 10),
        _item(2, "img1", "what number is shown?", ["5"] * 6 + ["five"] * 2 + ["55"] * 2),
        _item(3, "img2", "what does the sign say?", ["stop"] * 3 + ["STOP!"] * 2 + ["go"] * 5),
    ]
    lines = [_line(item["image_id"], item["question"]) for item in items]
    task = TextVQATask()
    return task, task.load(_write(tmp_path, items, lines))


def test_sample_ids_are_unique_per_line(tmp_path: Path) -> None:
    _, samples = _standard(tmp_path)
    assert [s.id for s in samples] == ["img1#0", "img1#1", "img2#0"]
    assert samples[1].metadata["eval_question"] == "what number is shown?"
    assert samples[1].metadata["annotation_question_id"] == 2 and samples[1].metadata["image_id"] == "img1"
    assert samples[1].metadata["ocr_tokens"] == ["A", "B"]
    assert samples[0].images[0].path.endswith("textvqa/train_images/img1.jpg")
    assert samples[0].question.startswith("What brand is this?\nReference OCR token: A, B")


def test_scores_hand_worked(tmp_path: Path) -> None:
    task, samples = _standard(tmp_path)
    answers = {"img1#0": "Coca-Cola", "img1#1": "Five.", "img2#0": "Stop"}
    result = task.score(samples, {k: Response(text=v) for k, v in answers.items()})
    # "coca-cola" -> "coca cola" (no space next to '-'): 10 matches -> 1; "five." -> "5": 8 matches -> 1;
    # "stop" matches 3 + 2 ("STOP!" -> "stop") = 5 -> 1.
    assert [s.score for s in result.samples] == [1.0, 1.0, 1.0]
    result = task.score(samples, {"img1#0": Response(text="coke"), "img1#1": Response(text="55")})
    # eval_textvqa.py averages over the answers it was given: the unanswered question is left out.
    assert [s.score for s in result.samples] == pytest.approx([0.0, 0.6])
    assert result.metrics["accuracy"].value == pytest.approx(30.0)
    assert result.n_missing == 1
    assert result.headline == ["accuracy"]


def test_collision_later_annotation_wins(tmp_path: Path) -> None:
    items = [
        _item(1, "img1", "What is it?", ["old"] * 10),
        _item(2, "img1", "what is it?", ["new"] * 10),
    ]
    task = TextVQATask()
    samples = task.load(_write(tmp_path, items, [_line("img1", "what is it?"), _line("img1", "what is it?")]))
    assert [s.target[0] for s in samples] == ["new", "new"]
    assert [s.id for s in samples] == ["img1#0", "img1#1"]
    result = task.score(samples, {s.id: Response(text="new") for s in samples})
    assert result.metrics["accuracy"].value == 100.0
    assert any("later annotation" in note for note in result.notes)


def test_line_without_annotation_is_an_error_naming_it(tmp_path: Path) -> None:
    items = [_item(1, "img1", "what is it?", ["x"] * 10)]
    with pytest.raises(DataError, match=r"llava_textvqa_val_v051_ocr.jsonl:2: no annotation .* 'what is that\?'"):
        TextVQATask().load(_write(tmp_path, items, [_line("img1", "what is it?"), _line("img1", "what is that?")]))


def test_unreadable_prompt_is_an_error_naming_the_line(tmp_path: Path) -> None:
    items = [_item(1, "img1", "what is it?", ["x"] * 10)]
    bad = {"question_id": "img1", "image": "img1.jpg", "text": "What is it?"}
    with pytest.raises(DataError, match=r"jsonl:1: prompt has 1 line"):
        TextVQATask().load(_write(tmp_path, items, [bad]))


def test_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    items = [_item(1, "img1", "what is it?", ["x"] * 10)]
    with pytest.raises(DataError, match=r"jsonl:2: malformed JSON"):
        TextVQATask().load(_write(tmp_path, items, [_line("img1", "what is it?"), "{broken"]))


def test_annotation_with_nine_answers_is_an_error_only_when_used(tmp_path: Path) -> None:
    items = [_item(1, "img1", "what is it?", ["x"] * 10), _item(7, "img9", "unused?", ["y"] * 9)]
    assert len(TextVQATask().load(_write(tmp_path, items, [_line("img1", "what is it?")]))) == 1
    items[0]["answers"] = ["x"] * 9
    with pytest.raises(DataError, match=r"data\[0\] \(question_id 1\): 9 answers"):
        TextVQATask().load(_write(tmp_path, items, [_line("img1", "what is it?")]))


def test_match_answers_by_recovered_question(tmp_path: Path) -> None:
    task, samples = _standard(tmp_path)
    records = [
        {"question_id": "img1", "prompt": samples[1].question, "text": "5"},
        {"question_id": "img1", "prompt": samples[0].question, "text": "coke"},
        {"question_id": "img404", "prompt": "x\ny", "text": "ignored"},
        {"question_id": "img1", "prompt": samples[0].question, "text": "coca cola"},  # later wins
        {"question_id": "img2", "text": "stop"},  # no prompt: by occurrence of the id
    ]
    assert task.match_answers(samples, records) == {"img1#1": "5", "img1#0": "coca cola", "img2#0": "stop"}
    with pytest.raises(DataError, match="question_id img1"):
        task.match_answers(samples, [{"question_id": "img1", "prompt": "no lines", "text": "x"}])


def test_match_answers_duplicate_questions_go_in_order(tmp_path: Path) -> None:
    items = [_item(1, "img1", "what is it?", ["a"] * 10)]
    task = TextVQATask()
    samples = task.load(_write(tmp_path, items, [_line("img1", "what is it?")] * 2))
    prompt = samples[0].question
    records = [{"question_id": "img1", "prompt": prompt, "text": t} for t in ("first", "second", "third")]
    assert task.match_answers(samples, records) == {"img1#0": "first", "img1#1": "third"}


# ----------------------------------------------------------------------------------------------
# scoring without the question file: eval_textvqa.py reads the annotations and the answers only

SCORED_METADATA = ("question_id", "image_id", "eval_question", "raw_question", "annotation_question_id",
                   "annotation_shared")  # fmt: skip


def _scored_view(samples: list[Sample]) -> list[tuple[str, list[str], dict[str, Any]]]:
    """What scoring reads of each sample: id, target, and the metadata the scorer and matcher use."""
    return [(s.id, s.target, {k: s.metadata[k] for k in SCORED_METADATA}) for s in samples]


def test_data_files_question_file_only_to_run() -> None:
    needed = {f.path: f.needed_for for f in TextVQATask().data_files()}
    assert needed == {LLAVA_QUESTIONS: "run", ANNOTATIONS: "score", "textvqa/train_images": "run"}


def test_load_for_scoring_gives_the_samples_of_the_question_file(tmp_path: Path) -> None:
    task, samples = _standard(tmp_path)
    (tmp_path / LLAVA_QUESTIONS).unlink()
    scoring = task.load_for_scoring(tmp_path)
    assert _scored_view(scoring) == _scored_view(samples)
    assert scoring[0].question == "what brand is this?" and scoring[0].metadata["ocr_tokens"] is None
    records = [{"question_id": s.metadata["question_id"], "prompt": s.question, "text": t}
               for s, t in zip(samples, ("coke", "5", "stop"))]  # fmt: skip
    matched = task.match_answers(scoring, records)
    assert matched == task.match_answers(samples, records) == {"img1#0": "coke", "img1#1": "5", "img2#0": "stop"}
    responses = {"img1#0": Response(text="coke"), "img1#1": Response(text="55")}  # img2#0 unanswered
    assert task.score(scoring, responses) == task.score(samples, responses)


def test_load_for_scoring_collision_later_annotation_wins(tmp_path: Path) -> None:
    items = [_item(1, "img1", "What is it?", ["old"] * 10), _item(2, "img1", "what is it?", ["new"] * 10)]
    task = TextVQATask()
    samples = task.load(_write(tmp_path, items, [_line("img1", "what is it?"), _line("img1", "what is it?")]))
    scoring = task.load_for_scoring(tmp_path)
    assert _scored_view(scoring) == _scored_view(samples)
    assert [s.target[0] for s in scoring] == ["new", "new"] and scoring[0].metadata["annotation_shared"]


REAL_TEXTVQA = REALDATA / "textvqa"


@pytest.mark.skipif(not (REAL_TEXTVQA / "answers/llava-v1.5-13b.jsonl").is_file(),
                    reason=f"real TextVQA files not found at {REAL_TEXTVQA}")  # fmt: skip
def test_score_needs_no_question_file_and_run_does(tmp_path: Path) -> None:
    questions = REAL_TEXTVQA / "llava_textvqa_val_v051_ocr.jsonl"
    answers = read_jsonl(REAL_TEXTVQA / "answers/llava-v1.5-13b.jsonl")
    given = {(a["question_id"], recover_question(a["prompt"])): a["text"] for a in answers}
    # A stand-in for TextVQA_0.5.1_val.json (not in the folder): one item per question line, in the line order,
    # k = i % 5 of its ten answers being LLaVA-1.5-13B's own answer, so the scores are 0, .3, .6, .9 and 1.
    items = []
    for i, line in enumerate(read_jsonl(questions)):
        question = recover_question(line["text"])
        mine = given[(line["question_id"], question)]
        items.append(_item(34602 + i, line["question_id"], question, [mine] * (i % 5) + [f"gt{i}"] * (10 - i % 5)))
    annotations = tmp_path / "TextVQA_0.5.1_val.json"
    annotations.write_text(json.dumps({"dataset_type": "val", "data": items}), encoding="utf-8")
    kept = tmp_path / "answers.jsonl"  # every 9th answer left out: unanswered questions leave the mean
    kept.write_text("".join(json.dumps(a) + "\n" for i, a in enumerate(answers) if i % 9), encoding="utf-8")
    full = score_cli.link_root(tmp_path / "full", {ANNOTATIONS: annotations, LLAVA_QUESTIONS: questions})
    bare = score_cli.link_root(tmp_path / "bare", {ANNOTATIONS: annotations})

    result, log = score_cli.score("textvqa", kept, full, tmp_path / "out-full")
    assert score_cli.score("textvqa", kept, bare, tmp_path / "out-bare") == (result, log)
    fingerprints = [score_cli.data_fingerprint(tmp_path / out, "textvqa") for out in ("out-full", "out-bare")]
    assert fingerprints[0] == fingerprints[1]
    n_left_out = len(range(0, 5000, 9))
    assert (result["n_samples"], result["n_missing"], len(log)) == (5000 - n_left_out, n_left_out, 5000)
    values = [(0.0, 0.3, 0.6, 0.9, 1.0)[i % 5] for i in range(5000) if i % 9]
    assert result["scores"]["accuracy"] == pytest.approx(100 * sum(values) / len(values))

    message = score_cli.run_error("textvqa", bare, tmp_path / "out-run")
    assert message.startswith("error: missing data files") and str(bare / LLAVA_QUESTIONS) in message
    assert str(bare / ANNOTATIONS) not in message


# ----------------------------------------------------------------------------------------------
# protocols


def test_lmms_eval_prompt_capitalises_and_drops_ocr(tmp_path: Path) -> None:
    items = [_item(1, "img1", "what does NYC stand for?", ["new york city"] * 10)]
    task = TextVQATask()
    sample = task.load(_write(tmp_path, items, [_line("img1", "What does NYC stand for?", "NYC, TAXI")]))[0]
    llava = task.build_request(sample, load_protocol("llava15").settings_for(task))
    lmms = task.build_request(sample, load_protocol("lmms-eval").settings_for(task))
    assert llava.prompt == "<image>\nWhat does NYC stand for?\nReference OCR token: NYC, TAXI" + LLAVA_SUFFIX
    assert lmms.prompt == "<image>\nWhat does nyc stand for?" + LLAVA_SUFFIX
    assert (llava.generation.max_new_tokens, llava.generation.stop) == (128, ())
    assert (lmms.generation.max_new_tokens, lmms.generation.stop) == (1024, ("ASSISTANT:",))
    with_ocr = task.build_request(sample, {**load_protocol("lmms-eval").settings_for(task), "ocr": True})
    assert with_ocr.prompt == "<image>\nWhat does nyc stand for?\nReference OCR token: NYC, TAXI" + LLAVA_SUFFIX
    with pytest.raises(UsageError):
        task.build_request(sample, {"prompt": "other"})


def test_both_protocols_score_alike(tmp_path: Path) -> None:
    task, samples = _standard(tmp_path)
    answers = {"img1#0": " Coca Cola\n", "img1#1": "55", "img2#0": "Yes."}
    responses = {k: Response(text=v) for k, v in answers.items()}
    llava = task.score(samples, responses, load_protocol("llava15").settings_for(task))
    lmms = task.score(samples, responses, load_protocol("lmms-eval").settings_for(task))
    assert [s.score for s in llava.samples] == [s.score for s in lmms.samples] == pytest.approx([1.0, 0.6, 0.0])
    assert task.score(samples, responses).metrics == llava.metrics
    with pytest.raises(UsageError):
        task.score(samples, responses, {"scorer": "anls"})


def test_entry_point_and_protocol_settings() -> None:
    task = get_task("textvqa")
    assert isinstance(task, TextVQATask) and task.hf_dataset == "lmms-lab/textvqa"
    for name in ("llava15", "lmms-eval"):
        protocol = load_protocol(name)
        assert protocol.settings_for(task) == {**protocol.defaults, **protocol.tasks["textvqa"]}


# ----------------------------------------------------------------------------------------------
# demo data


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("textvqa-demo")
    textvqa_demo.write_demo(root, 7)
    return root


def test_demo_release_schema(demo_root: Path) -> None:
    release = json.loads((demo_root / ANNOTATIONS).read_text())
    assert {k: release[k] for k in ("dataset_type", "dataset_name", "dataset_version")} == {
        "dataset_type": "val",
        "dataset_name": "textvqa",
        "dataset_version": "0.5.1",
    }
    fields = {
        "question", "image_id", "image_classes", "flickr_original_url", "flickr_300k_url", "image_width",
        "image_height", "answers", "question_tokens", "question_id", "set_name",
    }  # fmt: skip
    assert 40 <= len(release["data"]) <= 45
    assert len({item["question_id"] for item in release["data"]}) == len(release["data"])
    for item in release["data"]:
        assert set(item) == fields and item["set_name"] == "val"
        assert item["question"] == item["question"].lower() and item["question"].endswith("?")
        assert len(item["image_id"]) == 16 and int(item["image_id"], 16) >= 0
        assert len(item["answers"]) == 10 and all(isinstance(a, str) for a in item["answers"])
        assert item["question_tokens"] == item["question"].rstrip("?").split()
        assert (demo_root / "textvqa/train_images" / f"{item['image_id']}.jpg").is_file()
    varied = sum(len(set(item["answers"])) > 1 for item in release["data"])
    assert varied > len(release["data"]) // 2
    assert any(len({evalai_answer(a) for a in item["answers"]}) < len(set(item["answers"])) for item in release["data"])


def test_demo_llava_file_matches_release(demo_root: Path) -> None:
    release = json.loads((demo_root / ANNOTATIONS).read_text())["data"]
    lines = [json.loads(x) for x in (demo_root / LLAVA_QUESTIONS).read_text().splitlines()]
    assert len(lines) == len(release)
    for line, item in zip(lines, release):
        assert set(line) == {"question_id", "image", "text", "category"}
        assert line["question_id"] == item["image_id"] and line["image"] == f"{item['image_id']}.jpg"
        first, ocr, suffix = line["text"].split("\n")
        assert first.lower() == item["question"] and first[0].isupper()
        assert ocr.startswith("Reference OCR token: ") and "\n" + suffix == LLAVA_SUFFIX
    assert Counter(line["question_id"] for line in lines).most_common(1)[0][1] == 3  # ids repeat per image


def test_demo_answers_follow_from_the_scene() -> None:
    for image in textvqa_demo.plan(7):
        scene = make_scene(7, "eval", image.scene_index)
        assert scene == image.scene and scene.word
        assert set(image.ocr_tokens) <= {scene.word.upper(), *textvqa_demo.OCR_NOISE}
        for _, question, _ in image.questions:
            expected = {
                "what word is written in the image?": scene.word,
                "how many letters does the word have?": str(len(scene.word)),
                "what is the first letter of the word?": scene.word[0],
                "what is the last letter of the word?": scene.word[-1],
                "what color is the text?": "black",
            }[question.question]
            assert question.answer == expected


def test_demo_ground_truth_scores_100(demo_root: Path) -> None:
    task = TextVQATask()
    samples = task.load(demo_root)
    assert len({s.id for s in samples}) == len(samples) >= 40
    truth = {s.id: Response(text=Counter(s.target).most_common(1)[0][0]) for s in samples}
    for settings in (None, load_protocol("lmms-eval").settings_for(task)):
        assert task.score(samples, truth, settings).metrics["accuracy"].value == pytest.approx(100.0)
    records = [
        {"question_id": s.metadata["question_id"], "prompt": s.question, "text": truth[s.id].text} for s in samples
    ]
    matched = task.match_answers(samples, records)
    assert matched == {sid: r.text for sid, r in truth.items()}
    assert task.score(samples, {s.id: Response(text="zebra") for s in samples}).metrics["accuracy"].value == 0.0


def test_demo_is_deterministic_and_fast(tmp_path: Path) -> None:
    start = time.perf_counter()
    textvqa_demo.write_demo(tmp_path / "a", 3)
    textvqa_demo.write_demo(tmp_path / "b", 3)
    assert time.perf_counter() - start < 2.0
    for rel in (ANNOTATIONS, LLAVA_QUESTIONS):
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    textvqa_demo.write_demo(tmp_path / "c", 4)
    assert (tmp_path / "c" / ANNOTATIONS).read_bytes() != (tmp_path / "a" / ANNOTATIONS).read_bytes()
