"""SEED-Bench demo data: synthetic scenes with four-option questions of the nine image question types.

Writes under ``<root>/seed_bench`` (LLaVA's ``playground/data/eval/seed_bench`` layout): the images in
``SEED-Bench-image/``, ``SEED-Bench.json`` (the official annotation schema, plus one video question, which
the image part leaves out) and LLaVA's ``llava-seed-bench.jsonl``. Each type gets a synthetic analogue whose
answer follows from the scene (counting shapes, the colour of a shape, where a shape is, the word...).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.data.prepare import write_jsonl
from tasks.common.question_file import question_line
from tasks.demo.scenes import BACKGROUNDS, COLORS, KINDS, NUMBER_WORDS, WORDS, Scene, make_scene, render
from tasks.seed_bench.prepare import QUESTION_TYPES, TYPE_NAMES, llava_text

QUESTIONS_PER_TYPE = 2
IMAGE_SIZE = 96
SCENE_INDEX_BASE = 4000  # eval-split scene indices used here start at this
MAX_DRAWS = 500
FIRST_ID = 101000
POSITIONS = ("top left", "top right", "bottom left", "bottom right")

Ask = tuple[str, str, list[str]]  # question, right option, wrong options


def _scene(scene: Scene, rng: random.Random) -> Ask | None:
    return "What is the color of the background?", scene.background, [b for b in BACKGROUNDS if b != scene.background]


def _identity(scene: Scene, rng: random.Random) -> Ask | None:
    shape = rng.choice(scene.shapes)
    right = f"{shape.color} {shape.kind}"
    wrong = [f"{c} {k}" for c in COLORS for k in KINDS if f"{c} {k}" != right]
    return f"Which shape is in the {shape.position} of the image?", right, wrong


def _location(scene: Scene, rng: random.Random) -> Ask | None:
    shape = scene.pick_by_kind(rng)
    if shape is None:
        return None
    return f"Where is the {shape.kind}?", shape.position, [p for p in POSITIONS if p != shape.position]


def _attributes(scene: Scene, rng: random.Random) -> Ask | None:
    shape = scene.pick_by_kind(rng)
    if shape is None:
        return None
    return f"What color is the {shape.kind}?", shape.color, [c for c in COLORS if c != shape.color]


def _counting(scene: Scene, rng: random.Random) -> Ask | None:
    n = len(scene.shapes)
    return "How many shapes are in the image?", NUMBER_WORDS[n], [w for w in NUMBER_WORDS[1:6] if w != NUMBER_WORDS[n]]


def _spatial(scene: Scene, rng: random.Random) -> Ask | None:
    left = [s for s in scene.shapes if s.side == "left" and scene.count(kind=s.kind) == 1]
    right = [s for s in scene.shapes if s.side == "right" and scene.count(kind=s.kind) == 1]
    if not left or not right:
        return None
    a, b = rng.choice(left), rng.choice(right)
    return f"Where is the {a.kind} relative to the {b.kind}?", "to the left", ["to the right", "above", "inside"]


def _interaction(scene: Scene, rng: random.Random) -> Ask | None:
    if len(scene.shapes) < 2:
        return None
    return "How are the shapes arranged?", "side by side", ["stacked on each other", "overlapping", "in a circle"]


def _reasoning(scene: Scene, rng: random.Random) -> Ask | None:
    shape = scene.pick_by_color(rng)
    if shape is None or shape.color not in ("red", "green", "yellow"):
        return None
    meaning = {"red": "stop", "green": "go", "yellow": "slow down"}
    right = meaning[shape.color]
    return (
        f"If the {shape.color} shape were a traffic light, what would it mean?",
        right,
        [m for m in [*meaning.values(), "turn around"] if m != right],
    )


def _text(scene: Scene, rng: random.Random) -> Ask | None:
    if not scene.word:
        return None
    return "What word is written in the image?", scene.word, [w for w in WORDS if w != scene.word]


ASKERS: dict[int, Callable[[Scene, random.Random], Ask | None]] = {
    1: _scene, 2: _identity, 3: _location, 4: _attributes, 5: _counting, 6: _spatial, 7: _interaction,
    8: _reasoning, 9: _text,
}  # fmt: skip


def _question(qid: int, type_id: int, data_id: str, ask: Ask, rng: random.Random) -> dict[str, Any]:
    text, right, wrong = ask
    options = [right, *rng.sample(wrong, 3)]
    rng.shuffle(options)
    letters = "ABCD"
    question: dict[str, Any] = {"answer": letters[options.index(right)]}
    question.update({f"choice_{letter.lower()}": option for letter, option in zip(letters, options)})
    question.update({"data_id": data_id, "data_type": "image", "question": text, "question_id": str(qid),
                     "question_type_id": type_id})  # fmt: skip
    return question


def write_demo(root: Path, seed: int) -> None:
    """Write the SEED-Bench demo files under ``root/seed_bench``."""
    base = Path(root) / "seed_bench"
    (base / "SEED-Bench-image").mkdir(parents=True, exist_ok=True)
    questions: list[dict[str, Any]] = []
    lines: list[dict[str, Any]] = []
    index = SCENE_INDEX_BASE
    for type_id, asker in ASKERS.items():
        for _ in range(QUESTIONS_PER_TYPE):
            for _ in range(MAX_DRAWS):
                scene = make_scene(seed, "eval", index)
                rng = random.Random(f"{seed}:seed_bench:{type_id}:{index}")
                index += 1
                ask = asker(scene, rng)
                if ask is not None and len(ask[2]) >= 3:
                    break
            else:
                raise RuntimeError(f"no scene for SEED-Bench question type {type_id} in {MAX_DRAWS} draws")
            qid = FIRST_ID + len(questions)
            data_id = f"{seed}_{index - 1}.jpg"
            render(scene, IMAGE_SIZE).save(base / "SEED-Bench-image" / data_id, quality=95)
            question = _question(qid, type_id, data_id, ask, rng)
            questions.append(question)
            lines.append(question_line(qid, f"SEED-Bench-image/{data_id}", llava_text(question), TYPE_NAMES[type_id]))
    video = {"answer": "A", "choice_a": "moving left", "choice_b": "moving right", "choice_c": "standing still",
             "choice_d": "spinning", "data_id": "demo/video.mp4", "data_type": "video",
             "question": "What is the shape doing?", "question_id": "v1", "question_type_id": 10,
             "segment": [0.0, 1.0]}  # fmt: skip
    payload = {"questions": [*questions, video], "question_type": QUESTION_TYPES}
    (base / "SEED-Bench.json").write_text(json.dumps(payload, indent=2), encoding="utf-8")
    write_jsonl(base / "llava-seed-bench.jsonl", lines)
