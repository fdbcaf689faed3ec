"""LLaVA-Bench demo data: synthetic images with conv / detail / complex questions in the official files.

Writes under ``<root>/llava-bench-in-the-wild/``:

- ``images/<nnn>.jpg``: image ``i`` shows ``make_scene(seed, "eval", 7000 + i)``;
- ``questions.jsonl`` (``image``, ``text``, ``category``, ``question_id``), three questions per image,
  one of each category;
- ``context.jsonl`` (``id``, ``image``, ``caption``): one caption string per image;
- ``answers_gpt4.jsonl`` (``question_id``, ``prompt``, ``answer_id``, ``model_id``, ``metadata``, ``text``):
  reference answers written from the scene;
- ``rule.json``: review rules written for the demo (not LLaVA's text), one per category, each with a
  ``role`` and a ``prompt`` asking for the two scores on the first line.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

from tasks.demo.scenes import NUMBER_WORDS, Scene, make_scene, render

N_IMAGES = 7
SCENE_INDEX_BASE = 7000  # eval-split scene indices used here (MM-Vet uses 6000..)
IMAGE_SIZE = 96
JPEG_QUALITY = 95
FOLDER = "llava-bench-in-the-wild"

_SCORING = (
    "Score each answer from 1 to 10 for how helpful, relevant, accurate and detailed it is. Put the two scores "
    "on the first line, Assistant 1 first, separated by a single space, and nothing else on that line. On the "
    "following lines explain the scores; the order in which the answers appear must not affect them."
)
DEMO_RULES = {
    f"llava_bench_{category}": {
        "role": "Assistant",
        "prompt": f"Two assistants answered {what} about an image that is described to you in the context. {_SCORING}",
    }
    for category, what in (
        ("conv", "a short question"),
        ("detail", "a request for a detailed description"),
        ("complex", "a question that needs some reasoning"),
    )
}

Question = tuple[str, str]  # question text, reference answer


def _listing(scene: Scene) -> str:
    parts = [f"a {s.color} {s.kind} at the {s.position}" for s in scene.shapes]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + f" and {parts[-1]}"


def caption(scene: Scene) -> str:
    """The context caption of a scene: what is drawn, on which background, and the word."""
    text = f"A flat drawing of {_listing(scene)} on a {scene.background} background."
    return text + (f' The word "{scene.word}" is written along the bottom.' if scene.word else "")


def conv_question(scene: Scene, rng: random.Random) -> Question:
    shape = scene.pick_by_kind(rng)
    if shape is not None:
        return f"What color is the {shape.kind}?", f"The {shape.kind} is {shape.color}."
    n = len(scene.shapes)
    return "How many shapes are in the picture?", f"There are {NUMBER_WORDS[n]} shapes in the picture."


def detail_question(scene: Scene, rng: random.Random) -> Question:
    word = f' Along the bottom edge the word "{scene.word}" is printed in black letters.' if scene.word else ""
    n = len(scene.shapes)
    text = (
        f"The image is a simple flat drawing on a {scene.background} background. It contains "
        f"{NUMBER_WORDS[n]} shape{'s' if n > 1 else ''}: {_listing(scene)}.{word} There is no shading or perspective."
    )
    return "Describe this image in detail.", text


def complex_question(scene: Scene, rng: random.Random) -> Question:
    if scene.word:
        return (
            "What could this picture be used for when teaching a child?",
            f'It could teach shapes and colors ({_listing(scene)}) and also reading, since it shows the word "'
            f'{scene.word}".',
        )
    n = len(scene.shapes)
    return (
        "If one shape were taken away, how many would be left, and why?",
        f"There would be {NUMBER_WORDS[n - 1]} left, because the picture has {NUMBER_WORDS[n]} shapes.",
    )


CATEGORIES: tuple[tuple[str, Callable[[Scene, random.Random], Question]], ...] = (
    ("conv", conv_question),
    ("detail", detail_question),
    ("complex", complex_question),
)


def _jsonl(path: Path, records: list[dict[str, object]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def write_demo(root: Path, seed: int) -> None:
    """Write the LLaVA-Bench demo files under ``root``."""
    folder = Path(root) / FOLDER
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"llava-bench-demo:{seed}")
    questions, contexts, references = [], [], []
    for i in range(N_IMAGES):
        scene = make_scene(seed, "eval", SCENE_INDEX_BASE + i)
        stem = f"{i + 1:03d}"
        image = f"{stem}.jpg"
        render(scene, IMAGE_SIZE).save(folder / "images" / image, quality=JPEG_QUALITY)
        contexts.append({"id": stem, "image": image, "caption": caption(scene)})
        for category, make in CATEGORIES:
            text, reference = make(scene, rng)
            qid = len(questions)
            questions.append({"image": image, "text": text, "category": category, "question_id": qid})
            references.append(
                {
                    "question_id": qid,
                    "prompt": text,
                    "answer_id": f"demo-ref-{qid}",
                    "model_id": "demo-reference",
                    "metadata": {},
                    "text": reference,
                }
            )
    _jsonl(folder / "questions.jsonl", questions)
    _jsonl(folder / "context.jsonl", contexts)
    _jsonl(folder / "answers_gpt4.jsonl", references)
    (folder / "rule.json").write_text(json.dumps(DEMO_RULES, indent=4), encoding="utf-8")
