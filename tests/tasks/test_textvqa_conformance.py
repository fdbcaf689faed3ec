"""TextVQA against LLaVA's real question file and LLaVA-1.5-13B answers (skipped without the realdata folder).

The ground truth (TextVQA_0.5.1_val.json) is not in the folder, so the published 61.3 cannot be
reproduced here; these tests check that eval_textvqa.py's question recovery reads every real prompt
and that every real answer is joined to its own question line.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from harness.data.readers import read_jsonl
from harness.types import Response
from tasks.textvqa import ANNOTATIONS, LLAVA_QUESTIONS, TextVQATask
from tasks.textvqa.scorer import ocr_tokens, recover_question
from tests.helpers.paths import REALDATA

TEXTVQA = REALDATA / "textvqa"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real TextVQA data not found: {path} (set HARNESS_REALDATA)")
    return path


def test_every_real_prompt_gives_its_question() -> None:
    lines = read_jsonl(_need(TEXTVQA / "llava_textvqa_val_v051_ocr.jsonl"))
    assert len(lines) == 5000
    for line in lines:
        first = line["text"].split("\n")[0]
        assert recover_question(line["text"]) == first.lower()
        assert ocr_tokens(line["text"]) is not None
        assert line["image"] == f"{line['question_id']}.jpg"
    keys = Counter((line["question_id"], recover_question(line["text"])) for line in lines)
    assert max(keys.values()) == 1  # no two lines of one image ask the same question
    assert sum(ocr_tokens(line["text"]) == [] for line in lines) == 115  # empty "Reference OCR token: " lines


def test_real_answers_join_their_question_lines(tmp_path: Path) -> None:
    questions = _need(TEXTVQA / "llava_textvqa_val_v051_ocr.jsonl")
    answers = read_jsonl(_need(TEXTVQA / "answers/llava-v1.5-13b.jsonl"))
    # A stand-in for the missing annotations: one item per question line, its question as the first line
    # of the prompt, ten placeholder answers. Matching lower-cases both sides, as eval_textvqa.py does.
    items = []
    for i, line in enumerate(read_jsonl(questions)):
        question = line["text"].split("\n")[0]
        items.append({"question": question, "image_id": line["question_id"], "answers": [f"gt{i}"] * 10,
                      "question_id": 34602 + i})  # fmt: skip
    (tmp_path / "textvqa").mkdir()
    (tmp_path / ANNOTATIONS).write_text(json.dumps({"dataset_type": "val", "data": items}))
    (tmp_path / LLAVA_QUESTIONS).symlink_to(questions)
    task = TextVQATask()
    samples = task.load(tmp_path)
    assert len(samples) == 5000 and len({s.id for s in samples}) == 5000
    assert Counter(s.id.split("#")[1] for s in samples)["0"] == 3166  # distinct image ids
    matched = task.match_answers(samples, answers)
    assert len(matched) == 5000
    expected = {(a["question_id"], a["prompt"]): a["text"] for a in answers}
    assert len(expected) == 5000
    for sample in samples:  # each answer went to the line whose text is the answer's prompt
        assert matched[sample.id] == expected[(sample.metadata["question_id"], sample.question)]
    result = task.score(samples, {sid: Response(text=text) for sid, text in matched.items()})
    assert result.n_missing == 0 and result.metrics["accuracy"].n == 5000
    # each sample's placeholder answers are its own: a prediction can only match when it is "gt<i>"
    assert result.metrics["accuracy"].value == 0.0
