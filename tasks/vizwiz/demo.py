"""VizWiz demo data: synthetic scenes with one question each, in VizWiz's and LLaVA's layouts.

``write_val_demo`` (task ``vizwiz_val``) writes under ``<root>/vizwiz``: ``val.json`` in VizWiz's
schema (a JSON array of ``{image, question, answers: 10 x {answer_confidence, answer}, answer_type,
answerable}``) and ``val/VizWiz_val_<8 digits>.jpg``.

``write_test_demo`` (task ``vizwiz``) writes ``test.json`` (``{image, question}``), LLaVA's
``llava_test.jsonl`` (``question_id`` = position in test.json, ``image``, question + the two answer
lines, ``category`` "default") and ``test/VizWiz_test_<8 digits>.jpg``.

Questions and ten answers come from the VQA-v2 demo templates (``tasks/vqav2/demo.py``); every
fifth question asks for a text the scene lacks, answered ``unanswerable`` by most people (answer
type ``unanswerable``, ``answerable`` 0), as blurred or off-frame VizWiz photos are. Scene indices:
val from 8000, test from 8500.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from harness.data.prepare import write_jsonl
from tasks.common.question_file import question_line
from tasks.demo.answers import human_answers
from tasks.demo.scenes import make_scene, render
from tasks.vizwiz import VIZWIZ_SUFFIX
from tasks.vqav2.demo import make_questions

VAL_SCENE_BASE = 8000
TEST_SCENE_BASE = 8500
VAL_QUESTIONS = 20
TEST_QUESTIONS = 20
IMAGE_SIZE = 96
JPEG_QUALITY = 95
UNANSWERABLE_EVERY = 5


def _unanswerable(rng: random.Random) -> tuple[str, list[str]]:
    question = rng.choice(["What does the label on this bottle say?", "What is the expiration date?"])
    answers = ["unanswerable"] * rng.randint(7, 10)
    answers += [rng.choice(["bottle", "i don't know", "blurry"]) for _ in range(10 - len(answers))]
    rng.shuffle(answers)
    return question, answers


def _confidence(rng: random.Random) -> str:
    return rng.choices(["yes", "maybe", "no"], weights=[8, 2, 1])[0]


def plan(seed: int, base: int, count: int, split: str) -> list[dict[str, Any]]:
    """The VizWiz-format records (with ``_scene``) of ``count`` demo images, without writing."""
    out: list[dict[str, Any]] = []
    for k in range(count):
        scene = make_scene(seed, "eval", base + k)
        rng = random.Random(f"{seed}:vizwiz:{split}:{k}")
        if k % UNANSWERABLE_EVERY == UNANSWERABLE_EVERY - 1:
            question, answers = _unanswerable(rng)
            answer_type, answerable = "unanswerable", 0
        else:
            demo = make_questions(scene, rng, count=1)[0]
            question, answers = demo.text, [a.strip().lower() for a in human_answers(rng, demo.spec)]
            answer_type, answerable = demo.answer_type, 1
        out.append({
            "image": f"VizWiz_{split}_{k:08d}.jpg", "question": question,
            "answers": [{"answer_confidence": _confidence(rng), "answer": a} for a in answers],
            "answer_type": answer_type, "answerable": answerable, "_scene": scene,
        })  # fmt: skip
    return out


def _save_images(records: list[dict[str, Any]], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for rec in records:
        render(rec["_scene"], IMAGE_SIZE).save(folder / rec["image"], quality=JPEG_QUALITY)


def write_val_demo(root: Path, seed: int) -> None:
    """VizWiz-format ``val.json`` and val images under ``root/vizwiz``."""
    base = Path(root) / "vizwiz"
    records = plan(seed, VAL_SCENE_BASE, VAL_QUESTIONS, "val")
    _save_images(records, base / "val")
    rows = [{k: v for k, v in rec.items() if k != "_scene"} for rec in records]
    (base / "val.json").write_bytes(json.dumps(rows).encode())


def write_test_demo(root: Path, seed: int) -> None:
    """VizWiz-format ``test.json``, LLaVA's ``llava_test.jsonl`` and the test images under ``root/vizwiz``."""
    base = Path(root) / "vizwiz"
    records = plan(seed, TEST_SCENE_BASE, TEST_QUESTIONS, "test")
    _save_images(records, base / "test")
    (base / "test.json").write_bytes(
        json.dumps([{"image": r["image"], "question": r["question"]} for r in records]).encode()
    )
    write_jsonl(
        base / "llava_test.jsonl",
        [question_line(i, r["image"], r["question"] + VIZWIZ_SUFFIX) for i, r in enumerate(records)],
    )
