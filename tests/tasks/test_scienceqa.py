"""ScienceQA-IMG: LLaVA's eval_science_qa.py rules, the question file, lmms-eval's variant, bad input, demo data."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.errors import DataError
from harness.protocol import load_protocol
from harness.types import Response, Sample
from tasks.demo import make_scene, render
from tasks.scienceqa import ScienceQATask
from tasks.scienceqa import demo as sqa_demo
from tasks.scienceqa.scorer import (
    FAILED,
    lmms_eval_correct,
    lmms_eval_letter,
    option_index,
    parse_letter,
)
from tests.helpers import score_cli
from tests.helpers.paths import REALDATA

SUFFIX = "\nAnswer with the option's letter from the given choices directly."
LLAVA = load_protocol("llava15").settings_for(ScienceQATask())
LMMS = load_protocol("lmms-eval").settings_for(ScienceQATask())


# ----------------------------------------------------------------------------------------------
# parsing rules of eval_science_qa.py


@pytest.mark.parametrize(
    ("text", "letter"),
    [
        ("A", "A"),
        ("E", "E"),
        ("F", FAILED),  # exact letters are A-E only
        ("b", FAILED),  # no lower-case handling
        (" B", FAILED),  # no stripping
        ("B ", FAILED),
        ("B\n", FAILED),
        ("B.", FAILED),  # "B." is 2 characters: the ". " rule needs 3
        ("B. ", "B"),
        ("B. Paris", "B"),
        ("(B)", FAILED),
        ("B: Paris", FAILED),
        ("The answer is B.", "B"),
        ("The answer is B!", "B"),  # the regex's last "." is any character
        ("So. The answer is C, surely", "C"),
        ("The answer is B", FAILED),  # needs one more character after the letter
        ("The answer is B\n", FAILED),  # "." does not match a newline
        ("The answer is B. The answer is C.", FAILED),  # two matches
        ("The answer is F.", "F"),  # any capital letter; the index step rejects it
        ("the answer is B.", FAILED),  # case-sensitive
        ("The answer is (B).", FAILED),
        ("", FAILED),
    ],
)
def test_parse_letter(text: str, letter: str) -> None:
    assert parse_letter(text) == letter


@pytest.mark.parametrize(
    ("letter", "n_choices", "index"),
    [("A", 2, 0), ("B", 2, 1), ("C", 2, -1), ("E", 5, 4), ("E", 4, -1), ("F", 5, -1), (FAILED, 3, -1)],
)
def test_option_index(letter: str, n_choices: int, index: int) -> None:
    assert option_index(letter, n_choices) == index


# lmms-eval: whole answer equal to the letter ignoring case (after strip), or "X." prefix.
@pytest.mark.parametrize(
    ("text", "official", "lmms_eval"),
    [
        ("B", True, True),
        ("b", False, True),
        ("B.", False, True),
        (" B", False, True),
        ("B\n", False, True),
        ("B. Paris", True, True),
        ("The answer is B.", True, False),
        ("(B)", False, False),
        ("b. paris", False, False),  # the prefix rule needs an upper-case first character
        ("C. Paris", False, False),
    ],
)
def test_official_and_lmms_eval_parsing_differ(text: str, official: bool, lmms_eval: bool) -> None:
    assert (option_index(parse_letter(text), 3) == 1) is official
    assert lmms_eval_correct(text, "B") is lmms_eval


def test_lmms_eval_letter_is_descriptive() -> None:
    assert lmms_eval_letter(" b ") == "B"
    assert lmms_eval_letter("C. x") == "C"
    assert lmms_eval_letter("The answer is B.") is None


# ----------------------------------------------------------------------------------------------
# tiny official-format files


def _problem(question: str, choices: list[str], answer: int, image: bool, hint: str = "") -> dict:
    return {
        "question": question,
        "choices": choices,
        "answer": answer,
        "hint": hint,
        "image": "image.png" if image else None,
        "task": "closed choice",
        "grade": "grade3",
        "subject": "natural science",
        "topic": "t",
        "category": "c",
        "skill": "s",
        "lecture": "",
        "solution": "",
        "split": "test",
    }


PROBLEMS = {
    "10": _problem("Which is red?", ["apple", "sky"], 0, True, hint="Look at the picture."),
    "11": _problem("Which is a mammal?", ["shark", "whale", "trout"], 1, False),
    "12": _problem("How many legs?", ["two", "four", "six", "eight"], 3, True),
    "13": _problem("Which word rhymes?", ["cat", "dog"], 1, False, hint="Say them aloud."),
    "99": _problem("Train problem", ["x", "y"], 0, False),
}


def _human(pid: str) -> str:
    p = PROBLEMS[pid]
    text = f"Context: {p['hint']}\n" if p["hint"] else ""
    text += p["question"] + "".join(f"\n{'ABCDE'[i]}. {c}" for i, c in enumerate(p["choices"]))
    return f"<image>\n{text}" if p["image"] else text


def write_sqa(root: Path, problems: dict | None = None, test_ids: tuple[str, ...] = ("10", "11", "12", "13")) -> Path:
    folder = root / "scienceqa"
    folder.mkdir(parents=True, exist_ok=True)
    problems = PROBLEMS if problems is None else problems
    (folder / "problems.json").write_text(json.dumps(problems), encoding="utf-8")
    splits = {"train": ["99"], "val": [], "test": list(test_ids), "trainval": ["99"], "minitrain": [],
              "minival": [], "minitest": []}  # fmt: skip
    (folder / "pid_splits.json").write_text(json.dumps(splits), encoding="utf-8")
    entries = []
    for pid in test_ids:
        entry: dict = {"id": pid}
        if PROBLEMS[pid]["image"]:
            entry["image"] = f"{pid}/image.png"
        entry["conversations"] = [
            {"from": "human", "value": _human(pid)},
            {"from": "gpt", "value": "ABCDE"[PROBLEMS[pid]["answer"]]},
        ]
        entries.append(entry)
    (folder / "llava_test_CQM-A.json").write_text(json.dumps(entries), encoding="utf-8")
    return root


def _responses(samples: list[Sample], texts: dict[str, str]) -> dict[str, Response]:
    return {s.id: Response(text=texts[s.id]) for s in samples if s.id in texts}


def test_load_follows_question_file(tmp_path: Path) -> None:
    samples = ScienceQATask().load(write_sqa(tmp_path))
    assert [s.id for s in samples] == ["10", "11", "12", "13"]
    assert [s.target for s in samples] == [0, 1, 3, 1]
    assert [len(s.images) for s in samples] == [1, 0, 1, 0]
    assert samples[0].images[0].path == str(tmp_path / "scienceqa/images/test/10/image.png")
    assert samples[0].question == "Context: Look at the picture.\nWhich is red?\nA. apple\nB. sky"
    assert samples[2].metadata["n_choices"] == 4 and samples[2].metadata["answer_letter"] == "D"


def test_llava_prompts_image_first_and_suffix(tmp_path: Path) -> None:
    task = ScienceQATask()
    samples = task.load(write_sqa(tmp_path))
    image, text = task.build_request(samples[0], LLAVA), task.build_request(samples[1], LLAVA)
    assert image.prompt == "<image>\nContext: Look at the picture.\nWhich is red?\nA. apple\nB. sky" + SUFFIX
    assert text.prompt == "Which is a mammal?\nA. shark\nB. whale\nC. trout" + SUFFIX
    assert "<image>" not in text.prompt and text.images == ()
    assert image.generation.max_new_tokens == 1024 and image.generation.temperature == 0.0


def test_image_token_anywhere_moves_to_front(tmp_path: Path) -> None:
    write_sqa(tmp_path)
    path = tmp_path / "scienceqa/llava_test_CQM-A.json"
    entries = json.loads(path.read_text())
    entries[0]["conversations"][0]["value"] = "Which is red?\nA. apple\nB. sky\n<image>"
    path.write_text(json.dumps(entries))
    task = ScienceQATask()
    assert (
        task.build_request(task.load(tmp_path)[0], LLAVA).prompt == "<image>\nWhich is red?\nA. apple\nB. sky" + SUFFIX
    )


def test_lmms_eval_prompt(tmp_path: Path) -> None:
    task = ScienceQATask()
    samples = task.load(write_sqa(tmp_path))
    request = task.build_request(samples[0], LMMS)
    assert request.prompt == "<image>\nContext: Look at the picture.\nWhich is red?\nA. apple\nB. sky" + SUFFIX
    assert task.build_request(samples[2], LMMS).prompt == (
        "<image>\nHow many legs?\nA. two\nB. four\nC. six\nD. eight" + SUFFIX
    )  # no "Context:" line for an empty hint
    assert request.generation.max_new_tokens == 16


def test_official_score_accuracy_and_img_accuracy(tmp_path: Path) -> None:
    task = ScienceQATask()
    samples = task.load(write_sqa(tmp_path))
    texts = {"10": "A", "11": "The answer is B.", "12": "D. eight", "13": "b"}
    result = task.score(samples, _responses(samples, texts))
    assert result.metrics["accuracy"].value == pytest.approx(75.0)
    assert result.metrics["img_accuracy"].value == pytest.approx(100.0) and result.metrics["img_accuracy"].n == 2
    assert result.headline == ["img_accuracy"]
    assert [s.parsed for s in result.samples] == ["A", "B", "D", FAILED]
    assert result.n_parse_failures == 1


def test_letter_beyond_the_choices_is_wrong(tmp_path: Path) -> None:
    task = ScienceQATask()
    samples = task.load(write_sqa(tmp_path))
    result = task.score(samples, _responses(samples, {"10": "C", "11": "B", "12": "E", "13": "B"}))
    assert [s.detail["index"] for s in result.samples] == [-1, 1, -1, 1]
    assert result.metrics["img_accuracy"].value == 0.0 and result.metrics["accuracy"].value == 50.0


def test_missing_answer_counts_in_accuracy_but_leaves_img_denominator(tmp_path: Path) -> None:
    task = ScienceQATask()
    samples = task.load(write_sqa(tmp_path))
    result = task.score(samples, _responses(samples, {"10": "A", "11": "B", "13": "B"}))  # 12 (image) missing
    assert result.n_missing == 1
    assert result.metrics["accuracy"].n == 4 and result.metrics["accuracy"].value == pytest.approx(75.0)
    assert result.metrics["img_accuracy"].n == 1 and result.metrics["img_accuracy"].value == pytest.approx(100.0)
    assert any("no answer" in note for note in result.notes)


def test_error_response_stays_in_img_denominator(tmp_path: Path) -> None:
    task = ScienceQATask()
    samples = task.load(write_sqa(tmp_path))
    responses = _responses(samples, {"10": "A", "11": "B", "13": "B"})
    responses["12"] = Response(error="OSError: cannot identify image file")
    result = task.score(samples, responses)
    assert result.n_errors == 1 and result.metrics["img_accuracy"].n == 2


def test_lmms_eval_scores_image_problems_only(tmp_path: Path) -> None:
    task = ScienceQATask()
    samples = task.load(write_sqa(tmp_path))
    texts = {"10": " a", "11": "B", "12": "The answer is D.", "13": "B"}
    result = task.score(samples, _responses(samples, texts), LMMS)
    assert result.metrics["img_accuracy"].n == 2 and result.metrics["img_accuracy"].value == pytest.approx(50.0)
    assert "accuracy" not in result.metrics
    assert any("text-only" in note for note in result.notes)
    official = task.score(samples, _responses(samples, texts), LLAVA)
    assert official.metrics["img_accuracy"].value == pytest.approx(50.0)  # the other way round: 12 right, 10 wrong
    assert [s.correct for s in official.samples if s.sample_id in ("10", "12")] == [False, True]


def test_unknown_scorer_or_prompt_is_an_error(tmp_path: Path) -> None:
    from harness.errors import HarnessError

    task = ScienceQATask()
    samples = task.load(write_sqa(tmp_path))
    with pytest.raises(HarnessError):
        task.score(samples, {}, {"scorer": "nope"})
    with pytest.raises(HarnessError):
        task.build_request(samples[0], {"prompt": "nope"})


# ----------------------------------------------------------------------------------------------
# scoring without the question file: eval_science_qa.py reads problems.json and pid_splits.json only


def _scored_view(samples: list[Sample]) -> list[tuple[str, int, int, dict]]:
    """What scoring reads of each sample: id, target, whether it has an image, and its metadata but the text."""
    return [(s.id, s.target, len(s.images), s.metadata) for s in samples]


def test_load_for_scoring_gives_the_samples_of_the_question_file(tmp_path: Path) -> None:
    task = ScienceQATask()
    samples = task.load(write_sqa(tmp_path))
    (tmp_path / "scienceqa/llava_test_CQM-A.json").unlink()
    scoring = task.load_for_scoring(tmp_path)
    assert _scored_view(scoring) == _scored_view(samples)
    assert [s.images for s in scoring] == [s.images for s in samples]
    assert scoring[0].question == "Which is red?"  # the problem's text: these samples make no LLaVA prompt
    texts = {"10": "A", "11": "The answer is B.", "13": "b"}  # 12 (an image problem) unanswered
    records = [{"question_id": pid, "prompt": "p", "text": t} for pid, t in texts.items()]
    assert task.match_answers(scoring, records) == task.match_answers(samples, records) == texts
    for settings in (LLAVA, LMMS):
        assert task.score(scoring, _responses(scoring, texts), settings) == task.score(
            samples, _responses(samples, texts), settings
        )


def test_load_for_scoring_names_a_test_problem_missing_from_problems(tmp_path: Path) -> None:
    write_sqa(tmp_path, {k: v for k, v in PROBLEMS.items() if k != "12"})
    with pytest.raises(DataError, match=r"pid_splits\.json: test problem 12 is not in .*problems\.json"):
        ScienceQATask().load_for_scoring(tmp_path)


REAL_SQA = REALDATA / "scienceqa"


@pytest.mark.skipif(not (REAL_SQA / "answers/llava-v1.5-13b_output.jsonl").is_file(),
                    reason=f"real ScienceQA files not found at {REAL_SQA}")  # fmt: skip
def test_score_needs_no_question_file_and_run_does(tmp_path: Path) -> None:
    from tests.tasks.test_scienceqa_conformance import LETTERS, n_options

    output = json.loads((REAL_SQA / "answers/llava-v1.5-13b_output.jsonl").read_text(encoding="utf-8"))
    analysis = output["correct"] + output["incorrect"]
    # problems.json is not in the folder: rebuilt from eval_science_qa.py's output (answer letter, option
    # count of each prompt, whether it had an image), as tests/tasks/test_scienceqa_conformance.py does.
    problems = {
        a["question_id"]: {
            "question": "",
            "hint": "",
            "split": "test",
            "answer": LETTERS.index(a["ground_truth"]),
            "choices": [f"option {i}" for i in range(n_options(a["question"]))],
            "image": "image.png" if a["is_multimodal"] else None,
        }
        for a in analysis
    }
    (tmp_path / "problems.json").write_text(json.dumps(problems), encoding="utf-8")
    answers = tmp_path / "answers.jsonl"
    lines = [{"question_id": a["question_id"], "prompt": a["question"], "text": a["pred"]} for a in analysis]
    answers.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    official = {"scienceqa/problems.json": tmp_path / "problems.json",
                "scienceqa/pid_splits.json": REAL_SQA / "pid_splits.json"}  # fmt: skip
    question_file = {"scienceqa/llava_test_CQM-A.json": REAL_SQA / "llava_test_CQM-A.json"}
    full = score_cli.link_root(tmp_path / "full", {**official, **question_file})
    bare = score_cli.link_root(tmp_path / "bare", official)

    result, log = score_cli.score("scienceqa", answers, full, tmp_path / "out-full")
    assert score_cli.score("scienceqa", answers, bare, tmp_path / "out-bare") == (result, log)
    fingerprints = [score_cli.data_fingerprint(tmp_path / out, "scienceqa") for out in ("out-full", "out-bare")]
    assert fingerprints[0] == fingerprints[1]
    img, acc = result["metrics"]["img_accuracy"], result["metrics"]["accuracy"]  # the published 71.6 (1445/2017)
    assert (round(img["value"], 2), img["n"], round(acc["value"], 2), acc["n"]) == (71.64, 2017, 74.39, 4241)

    task = ScienceQATask()  # the same with answers missing (FAILED in accuracy, out of img_accuracy's denominator)
    samples, scoring = task.load(full), task.load_for_scoring(bare)
    assert _scored_view(scoring) == _scored_view(samples)
    texts = {a["question_id"]: a["pred"] for i, a in enumerate(analysis) if i % 7}
    assert task.score(scoring, _responses(scoring, texts)) == task.score(samples, _responses(samples, texts))

    message = score_cli.run_error("scienceqa", bare, tmp_path / "out-run")
    assert message.startswith("error: missing data files")
    assert str(bare / "scienceqa/llava_test_CQM-A.json") in message and "problems.json" not in message


# ----------------------------------------------------------------------------------------------
# answers files and bad input


def test_match_answers_later_duplicate_wins_unknown_ignored(tmp_path: Path) -> None:
    task = ScienceQATask()
    samples = task.load(write_sqa(tmp_path))
    records = [
        {"question_id": "10", "prompt": "p", "text": "B"},
        {"question_id": "777", "prompt": "p", "text": "A"},
        {"question_id": "99", "prompt": "p", "text": "A"},  # a train problem: not a sample
        {"question_id": "10", "prompt": "p", "text": "A"},
        {"question_id": 11, "prompt": "p", "text": "B"},
    ]
    assert task.match_answers(samples, records) == {"10": "A", "11": "B"}


@pytest.mark.parametrize("field", ["answer", "choices"])
def test_problem_without_answer_or_choices_names_it(tmp_path: Path, field: str) -> None:
    problems = json.loads(json.dumps(PROBLEMS))
    del problems["12"][field]
    write_sqa(tmp_path, problems)
    with pytest.raises(DataError, match=rf"problems\.json: problem 12: missing field '{field}'"):
        ScienceQATask().load(tmp_path)


def test_bad_answer_index_and_absent_problem(tmp_path: Path) -> None:
    problems = json.loads(json.dumps(PROBLEMS))
    problems["11"]["answer"] = "B"
    write_sqa(tmp_path, problems)
    with pytest.raises(DataError, match="problem 11: 'answer'"):
        ScienceQATask().load(tmp_path)
    problems = {k: v for k, v in PROBLEMS.items() if k != "13"}
    write_sqa(tmp_path, problems)
    with pytest.raises(DataError, match="problem 13 is not in"):
        ScienceQATask().load(tmp_path)


def test_test_problem_missing_from_question_file(tmp_path: Path) -> None:
    write_sqa(tmp_path)
    splits_path = tmp_path / "scienceqa/pid_splits.json"
    splits = json.loads(splits_path.read_text())
    splits["test"].append("99")
    splits_path.write_text(json.dumps(splits))
    with pytest.raises(DataError, match="first: 99"):
        ScienceQATask().load(tmp_path)


def test_malformed_json_names_file_and_line(tmp_path: Path) -> None:
    write_sqa(tmp_path)
    (tmp_path / "scienceqa/problems.json").write_text('{\n"10": {,\n}', encoding="utf-8")
    with pytest.raises(DataError, match=r"problems\.json:2:"):
        ScienceQATask().load(tmp_path)


def test_data_files_and_hf_dataset() -> None:
    task = ScienceQATask()
    paths = {(f.path, f.needed_for) for f in task.data_files()}
    assert paths == {
        ("scienceqa/llava_test_CQM-A.json", "run"),  # eval_science_qa.py does not read it
        ("scienceqa/problems.json", "score"),
        ("scienceqa/pid_splits.json", "score"),
        ("scienceqa/images/test", "run"),
    }
    assert task.hf_dataset == "lmms-lab/ScienceQA"
    for settings in (LLAVA, LMMS):
        assert {"prompt", "scorer", "max_new_tokens"} <= set(settings)


# ----------------------------------------------------------------------------------------------
# demo data

SEED = 5
FIELDS = {"question", "choices", "answer", "hint", "image", "task", "grade", "subject", "topic", "category", "skill",
          "lecture", "solution", "split"}  # fmt: skip


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sqa-demo")
    sqa_demo.write_demo(root, SEED)
    return root


def _truth(item: sqa_demo.DemoProblem) -> str:
    """Recompute a demo answer from the scene (or the word list), by the question's wording."""
    scene, question = item.scene, item.problem.question
    from tasks.demo import NUMBER_WORDS, WORDS

    if scene is None:
        english = re.fullmatch(r"Which French word means '(\w+)'\?", question).group(1)
        return WORDS[english]
    rules = [
        (r"What color is the background\?", lambda: scene.background),
        (r"What color is the (\w+)\?", lambda k: scene.the(kind=k).color),
        (r"How many shapes are in the picture\?", lambda: NUMBER_WORDS[len(scene.shapes)]),
        (r"Which shape is (\w+)\?", lambda c: scene.the(color=c).kind),
        (r"Which word is written in the picture\?", lambda: scene.word),
    ]
    for pattern, rule in rules:
        match = re.fullmatch(pattern, question)
        if match:
            return rule(*match.groups())
    raise AssertionError(question)


def test_demo_official_schema_and_splits(demo_root: Path) -> None:
    problems = json.loads((demo_root / "scienceqa/problems.json").read_text())
    splits = json.loads((demo_root / "scienceqa/pid_splits.json").read_text())
    assert set(splits) == {"train", "val", "test", "trainval", "minitrain", "minival", "minitest"}
    assert len(splits["test"]) == 40 and splits["trainval"] == splits["train"] + splits["val"]
    assert set(splits["minitest"]) <= set(splits["test"])
    assert set(problems) == set(splits["trainval"]) | set(splits["test"])
    for pid, p in problems.items():
        assert set(p) == FIELDS, pid
        assert 2 <= len(p["choices"]) <= 5 and 0 <= p["answer"] < len(p["choices"])
        assert len(set(p["choices"])) == len(p["choices"])
        assert p["split"] in ("train", "val", "test") and pid in splits[p["split"]]
        assert p["image"] in ("image.png", None)
    test_images = [pid for pid in splits["test"] if problems[pid]["image"]]
    assert 30 <= len(test_images) < 40  # a few text-only test problems


def test_demo_llava_question_file_format(demo_root: Path) -> None:
    problems = json.loads((demo_root / "scienceqa/problems.json").read_text())
    entries = json.loads((demo_root / "scienceqa/llava_test_CQM-A.json").read_text())
    assert [e["id"] for e in entries] == json.loads((demo_root / "scienceqa/pid_splits.json").read_text())["test"]
    for entry in entries:
        p = problems[entry["id"]]
        assert set(entry) == ({"id", "image", "conversations"} if p["image"] else {"id", "conversations"})
        human, gpt = entry["conversations"]
        assert human["from"] == "human" and gpt == {"from": "gpt", "value": "ABCDE"[p["answer"]]}
        options = "".join(f"\n{'ABCDE'[i]}. {c}" for i, c in enumerate(p["choices"]))
        context = f"Context: {p['hint']}\n" if p["hint"] else ""
        assert human["value"] == ("<image>\n" if p["image"] else "") + context + p["question"] + options
        if p["image"]:
            assert entry["image"] == f"{entry['id']}/image.png"
            with Image.open(demo_root / "scienceqa/images/test" / entry["image"]) as img:
                assert img.format == "PNG" and img.size == (96, 96)


def test_demo_answers_follow_from_the_scene() -> None:
    items = sqa_demo.plan(SEED)
    for item in items:
        p = item.problem
        assert _truth(item) == p.choices[p.answer], item
        if item.scene is not None:
            assert make_scene(SEED, "eval", item.scene_index) == item.scene
            assert item.scene_index >= sqa_demo.SCENE_INDEX_BASE


def test_demo_images_show_their_scene(demo_root: Path) -> None:
    for item in sqa_demo.plan(SEED):
        if item.scene is not None:
            written = np.asarray(Image.open(demo_root / f"scienceqa/images/test/{item.pid}/image.png").convert("RGB"))
            assert np.array_equal(written, np.asarray(render(item.scene)))


def test_demo_round_trip_scores_100(demo_root: Path) -> None:
    task = ScienceQATask()
    samples = task.load(demo_root)
    assert len(samples) == 40 and all(Path(s.images[0].path).is_file() for s in samples if s.images)
    right = {s.id: Response(text="ABCDE"[s.target]) for s in samples}
    result = task.score(samples, right)
    assert result.metrics["img_accuracy"].value == 100.0 and result.metrics["accuracy"].value == 100.0
    assert task.score(samples, right, LMMS).metrics["img_accuracy"].value == 100.0
    wrong = {s.id: Response(text="ABCDE"[(s.target + 1) % s.metadata["n_choices"]]) for s in samples}
    assert task.score(samples, wrong).metrics["accuracy"].value == 0.0


def test_demo_is_deterministic_and_fast(tmp_path: Path) -> None:
    start = time.perf_counter()
    sqa_demo.write_demo(tmp_path / "a", 3)
    assert time.perf_counter() - start < 1.0
    sqa_demo.write_demo(tmp_path / "b", 3)
    sqa_demo.write_demo(tmp_path / "c", 4)

    def tree(root: Path) -> dict[str, bytes]:
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    assert tree(tmp_path / "a") == tree(tmp_path / "b")
    assert tree(tmp_path / "a") != tree(tmp_path / "c")
