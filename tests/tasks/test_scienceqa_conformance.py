"""ScienceQA-IMG against LLaVA-1.5-13B's published predictions (skipped when the realdata folder is absent).

problems.json is not in the realdata folder; a minimal one is rebuilt from eval_science_qa.py's own
output (ground-truth letter, the options listed in each prompt, whether the prompt had an image).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.data.readers import read_jsonl
from harness.protocol import load_protocol
from harness.types import Response
from tasks.scienceqa import ScienceQATask
from tests.helpers.paths import REALDATA

SQA = REALDATA / "scienceqa"
SUFFIX = "\nAnswer with the option's letter from the given choices directly."
LETTERS = "ABCDE"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real ScienceQA data not found: {path} (set HARNESS_REALDATA)")
    return path


def n_options(prompt: str) -> int:
    """How many ``\\nA. ``, ``\\nB. ``... option starts follow each other at the end of a prompt."""
    body = prompt.removesuffix(SUFFIX)
    start = body.rfind("\nA. ")
    count = 0
    while start >= 0 and count < len(LETTERS):
        count += 1
        if count == len(LETTERS):
            break
        start = body.find(f"\n{LETTERS[count]}. ", start + 1)
    return count


@pytest.fixture(scope="module")
def analysis() -> list[dict]:
    output = json.loads(_need(SQA / "answers/llava-v1.5-13b_output.jsonl").read_text(encoding="utf-8"))
    return output["correct"] + output["incorrect"]


@pytest.fixture(scope="module")
def scored(analysis: list[dict], tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("sqa")
    folder = root / "scienceqa"
    folder.mkdir()
    (folder / "llava_test_CQM-A.json").symlink_to(_need(SQA / "llava_test_CQM-A.json"))
    (folder / "pid_splits.json").symlink_to(_need(SQA / "pid_splits.json"))
    problems = {}
    for item in analysis:
        count = n_options(item["question"])
        assert count >= 2, item["question_id"]
        problems[item["question_id"]] = {
            "question": "",
            "choices": [f"option {i}" for i in range(count)],
            "answer": LETTERS.index(item["ground_truth"]),
            "hint": "",
            "image": "image.png" if item["is_multimodal"] else None,
            "split": "test",
        }
    (folder / "problems.json").write_text(json.dumps(problems), encoding="utf-8")
    answers = root / "answers.jsonl"
    lines = [
        json.dumps({"question_id": a["question_id"], "prompt": a["question"], "text": a["pred"]}) for a in analysis
    ]
    answers.write_text("\n".join(lines) + "\n", encoding="utf-8")

    task = ScienceQATask()
    samples = task.load(root)
    texts = task.match_answers(samples, read_jsonl(answers))
    result = task.score(samples, {sid: Response(text=t) for sid, t in texts.items()})
    return task, samples, result


def test_sample_count_and_order(scored) -> None:
    _, samples, _ = scored
    file_ids = [str(e["id"]) for e in json.loads((SQA / "llava_test_CQM-A.json").read_text(encoding="utf-8"))]
    assert [s.id for s in samples] == file_ids and len(samples) == 4241
    assert sum(1 for s in samples if s.images) == 2017


def test_prompts_equal_llava_prompts(scored, analysis: list[dict]) -> None:
    task, samples, _ = scored
    settings = load_protocol("llava15").settings_for(task)
    recorded = {a["question_id"]: a["question"] for a in analysis}
    for sample in samples:
        assert task.build_request(sample, settings).prompt == recorded[sample.id], sample.id


def test_img_accuracy_and_accuracy(scored) -> None:
    _, _, result = scored
    img, acc = result.metrics["img_accuracy"], result.metrics["accuracy"]
    assert (round(img.value * img.n / 100), img.n) == (1445, 2017)
    assert (round(acc.value * acc.n / 100), acc.n) == (3155, 4241)
    assert round(img.value, 2) == 71.64 and round(acc.value, 2) == 74.39
    assert acc.value == pytest.approx(74.39283187927376, abs=1e-9)
    assert result.n_missing == 0 and result.headline == ["img_accuracy"]


def test_per_problem_indices_equal_result_json(scored) -> None:
    _, _, result = scored
    official = json.loads(_need(SQA / "answers/llava-v1.5-13b_result.json").read_text(encoding="utf-8"))["results"]
    ours = {s.sample_id: s.detail["index"] for s in result.samples}
    assert ours == official
    assert sum(1 for v in ours.values() if v == -1) == 38


def test_parsed_letters_equal_output_jsonl(scored, analysis: list[dict]) -> None:
    _, _, result = scored
    ours = {s.sample_id: s.parsed for s in result.samples}
    assert ours == {a["question_id"]: a["parsed_ans"] for a in analysis}


def test_missing_answers_count_against_accuracy_only(scored) -> None:
    task, samples, full = scored
    by_id = {s.sample_id: s for s in full.samples}
    # Drop the answers of 100 image problems the model got right; re-answer the rest with their parsed letter.
    dropped = set(sorted(s.id for s in samples if s.images and by_id[s.id].correct)[:100])
    responses = {s.id: Response(text=by_id[s.id].parsed) for s in samples if s.id not in dropped}
    result = task.score(samples, responses)
    assert result.n_missing == 100
    assert result.metrics["accuracy"].n == 4241
    assert round(result.metrics["accuracy"].value * 4241 / 100) == 3155 - 100
    assert result.metrics["img_accuracy"].n == 2017 - 100
    assert round(result.metrics["img_accuracy"].value * 1917 / 100) == 1445 - 100


def test_n_options_reads_multiline_options() -> None:
    prompt = "Which closing?\nA. see you soon,\nRose\nB. See you soon,\nRose" + SUFFIX
    assert n_options(prompt) == 2
    assert n_options("Q\nA. x\nB. y\nC. z\nD. w\nE. v" + SUFFIX) == 5
