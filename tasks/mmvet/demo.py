"""MM-Vet demo data: synthetic open questions in the official ``mm-vet.json`` schema, and a judge instruction.

Writes under the data root:

- ``mm-vet/images/v1_<i>.png``: question ``i`` shows ``make_scene(seed, "eval", 6000 + i)``;
- ``mm-vet/mm-vet.json``: ``v1_<i>`` -> {imagename, question, answer, capability, imagesource}, answers
  using ``<AND>`` (every part needed) and ``<OR>`` (one part enough), capabilities from rec, ocr, know,
  gen, spat and math, several of them combined;
- ``mm-vet/mmvet_judge_prompt.txt``: a short grading instruction written for the demo (not the official
  one) in the same shape: a paragraph, a blank line, a Question | Ground truth | Prediction | Correctness
  table of worked rows, and a final newline.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

from tasks.demo.scenes import NUMBER_WORDS, WORDS, Scene, make_scene, render

N_QUESTIONS = 20
SCENE_INDEX_BASE = 6000  # eval-split scene indices used here (LLaVA-Bench uses 7000..)
IMAGE_SIZE = 96
QUESTIONS_FILE = "mm-vet/mm-vet.json"
PROMPT_FILE = "mm-vet/mmvet_judge_prompt.txt"
IMAGES_DIR = "mm-vet/images"

Item = tuple[str, str, list[str]]  # question, answer, capabilities

DEMO_INSTRUCTION = """\
Grade how well a model's prediction matches the ground truth. In the ground truth, <AND> joins parts \
that must all appear in the prediction, and <OR> joins alternatives of which any one is enough. Give a \
score from 0.0 (wrong) to 1.0 (right) in steps of 0.1, and fill in only the last cell of the table.

Question | Ground truth | Prediction | Correctness
--- | --- | --- | ---
How many shapes are there? | 3 <OR> three | There are three shapes. | 1.0
How many shapes are there? | 3 <OR> three | I see two shapes. | 0.0
Which shapes can you see? | circle <AND> square | A circle. | 0.5
Which shapes can you see? | circle <AND> square | A square and a circle. | 1.0
What word is written in the image? | moon | The image says "moon". | 1.0
"""


def _kinds(scene: Scene, rng: random.Random) -> Item | None:
    kinds = scene.kinds()
    return "Which kinds of shapes can you see?", "<AND>".join(kinds), ["rec"]


def _word(scene: Scene, rng: random.Random) -> Item | None:
    return ("What word is written in the image?", scene.word, ["ocr"]) if scene.word else None


def _french(scene: Scene, rng: random.Random) -> Item | None:
    if not scene.word:
        return None
    return "What is the French for the word written in the image?", WORDS[scene.word], ["ocr", "know"]


def _corner(scene: Scene, rng: random.Random) -> Item | None:
    shape = rng.choice(scene.shapes)
    return f"What shape is in the {shape.position} part of the image?", shape.kind, ["rec", "spat"]


def _count(scene: Scene, rng: random.Random) -> Item | None:
    n = len(scene.shapes)
    return "How many shapes are there in total?", f"{n}<OR>{NUMBER_WORDS[n]}", ["rec", "math"]


def _color(scene: Scene, rng: random.Random) -> Item | None:
    shape = scene.pick_by_kind(rng)
    if shape is None:
        return None
    return f"What color is the {shape.kind}?", shape.color, ["rec"]


def _describe(scene: Scene, rng: random.Random) -> Item | None:
    parts = [f"a {s.color} {s.kind}" for s in scene.shapes]
    listing = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + f" and {parts[-1]}"
    answer = f"The picture shows {listing} on a {scene.background} background."
    return "Write one sentence describing the picture.", answer, ["rec", "gen"]


def _letters(scene: Scene, rng: random.Random) -> Item | None:
    if not scene.word:
        return None
    n = len(scene.word)
    return "How many letters does the written word have?", f"{n}<OR>{NUMBER_WORDS[n]}", ["ocr", "math"]


def _word_place(scene: Scene, rng: random.Random) -> Item | None:
    if not scene.word:
        return None
    return "Is the word written near the top or near the bottom of the image?", "bottom", ["ocr", "spat"]


GENERATORS: tuple[Callable[[Scene, random.Random], Item | None], ...] = (
    _kinds,
    _word,
    _corner,
    _count,
    _french,
    _color,
    _describe,
    _letters,
    _word_place,
)


def make_item(scene: Scene, rng: random.Random, turn: int) -> Item:
    """The first generator, from ``turn`` on, that can ask about this scene."""
    for k in range(len(GENERATORS)):
        item = GENERATORS[(turn + k) % len(GENERATORS)](scene, rng)
        if item is not None:
            return item
    raise AssertionError("every scene has shapes")  # _kinds always answers


def write_demo(root: Path, seed: int) -> None:
    """Write the MM-Vet demo files under ``root``."""
    root = Path(root)
    (root / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"mmvet-demo:{seed}")
    data: dict[str, dict[str, object]] = {}
    for i in range(N_QUESTIONS):
        scene = make_scene(seed, "eval", SCENE_INDEX_BASE + i)
        question, answer, caps = make_item(scene, rng, i)
        name = f"v1_{i}.png"
        render(scene, IMAGE_SIZE).save(root / IMAGES_DIR / name)
        data[f"v1_{i}"] = {
            "imagename": name,
            "question": question,
            "answer": answer,
            "capability": caps,
            "imagesource": "synthetic",
        }
    (root / QUESTIONS_FILE).write_text(json.dumps(data, indent=4), encoding="utf-8")
    (root / PROMPT_FILE).write_text(DEMO_INSTRUCTION, encoding="utf-8")
