"""MMBench demo data: synthetic multiple-choice questions in the legacy ``mmbench_dev_20230712.tsv`` layout.

Writes ``<root>/mmbench/mmbench_dev_20230712.tsv`` with the legacy columns (``index, question,
hint, A, B, C, D, answer, category, image, source, l2-category, comment, split``): question ``i``
shows ``make_scene(seed, "eval", 5000 + n)`` as a base64 PNG, has 2 to 4 options and sometimes a
hint. As in the real file, the CircularEval copies follow all base rows (every first copy, then
every second...): copy ``k`` of a question with N options sits at ``index + k * 1_000_000``, its
option ``i`` is option ``i - k`` (mod N) of the base and its answer letter moves with the answer.

The questions cover the six L2 abilities with one or more L3 categories each, and their answers
follow from the scene.
"""

from __future__ import annotations

import base64
import csv
import io
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tasks.demo.choices import Choices, shuffled_choices
from tasks.demo.scenes import BACKGROUNDS, COLORS, KINDS, NUMBER_WORDS, WORDS, Scene, make_scene, render

N_QUESTIONS = 40
SCENE_INDEX_BASE = 5000  # eval-split scene indices used here (ScienceQA uses 4000..)
IMAGE_SIZE = 96
MAX_DRAWS = 200
ROUND = 1_000_000
LETTERS = "ABCD"
COLUMNS = (
    "index",
    "question",
    "hint",
    "A",
    "B",
    "C",
    "D",
    "answer",
    "category",
    "image",
    "source",
    "l2-category",
    "comment",
    "split",
)
HINT = "The image shows flat shapes on a plain background."
HINT_PROBABILITY = 0.3


@dataclass(frozen=True)
class Question:
    """One base question: text, choices (2-4 options), L3 and L2 category."""

    text: str
    choices: Choices
    category: str
    l2: str

    @property
    def options(self) -> tuple[str, ...]:
        return self.choices.options

    @property
    def answer(self) -> int:
        """The position of the right option."""
        return self.choices.answer


def _make(rng: random.Random, text: str, right: str, wrong: list[str], category: str, l2: str) -> Question:
    return Question(text, shuffled_choices(rng, right, wrong, most_wrong=3), category, l2)


CP, FPS, FPC = "coarse_perception", "finegrained_perception (instance-level)", "finegrained_perception (cross-instance)"
AR, RR, LR = "attribute_reasoning", "relation_reasoning", "logic_reasoning"


def _scene_question(scene: Scene, rng: random.Random) -> Question | None:
    return _make(
        rng,
        "What is the background color of this image?",
        scene.background,
        [b for b in BACKGROUNDS if b != scene.background],
        "image_scene",
        CP,
    )


def _color(scene: Scene, rng: random.Random) -> Question | None:
    shape = scene.pick_by_kind(rng)
    if shape is None:
        return None
    wrong = [c for c in COLORS if c != shape.color]
    return _make(rng, f"What color is the {shape.kind}?", shape.color, wrong, "attribute_recognition", FPS)


def _ocr(scene: Scene, rng: random.Random) -> Question | None:
    if not scene.word:
        return None
    wrong = [w for w in WORDS if w != scene.word]
    return _make(rng, "Which word is written at the bottom of the image?", scene.word, wrong, "ocr", FPS)


def _where(scene: Scene, rng: random.Random) -> Question | None:
    shape = scene.pick_by_kind(rng)
    if shape is None:
        return None
    corners = ["top left", "top right", "bottom left", "bottom right"]
    wrong = [c for c in corners if c != shape.position]
    return _make(rng, f"Where is the {shape.kind} in the image?", shape.position, wrong, "object_localization", FPS)


def _side(scene: Scene, rng: random.Random) -> Question | None:
    shapes = [scene.the(kind=k) for k in scene.unique_kinds()]
    pairs = [(a, b) for a in shapes for b in shapes if a.col != b.col]
    if not pairs:
        return None
    a, b = rng.choice(pairs)
    right = "left" if scene.left_of(a, b) else "right"
    text = f"Is the {a.kind} on the left or on the right of the {b.kind}?"
    options = ("left", "right") if rng.random() < 0.5 else ("right", "left")
    return Question(text, Choices.listed(options, right), "spatial_relationship", FPC)


def _same_color(scene: Scene, rng: random.Random) -> Question | None:
    kinds = scene.unique_kinds()
    if len(kinds) < 2:
        return None
    a, b = (scene.the(kind=k) for k in rng.sample(kinds, 2))
    right = "yes" if a.color == b.color else "no"
    options = ("yes", "no") if rng.random() < 0.5 else ("no", "yes")
    text = f"Do the {a.kind} and the {b.kind} have the same color?"
    return Question(text, Choices.listed(options, right), "attribute_comparison", FPC)


def _count(scene: Scene, rng: random.Random) -> Question | None:
    n = len(scene.shapes)
    wrong = [NUMBER_WORDS[i] for i in range(1, 5) if i != n]
    return _make(
        rng, "How many shapes are in the image?", NUMBER_WORDS[n], wrong, "structuralized_imagetext_understanding", LR
    )


def _french(scene: Scene, rng: random.Random) -> Question | None:
    if not scene.word:
        return None
    wrong = [f for e, f in WORDS.items() if e != scene.word]
    text = "The word in the image is English. Which French word means the same?"
    return _make(rng, text, WORDS[scene.word], wrong, "identity_reasoning", AR)


def _below(scene: Scene, rng: random.Random) -> Question | None:
    tops = [s for s in scene.shapes if s.row == 0 and s.kind in scene.unique_kinds()]
    if not tops:
        return None
    shape = rng.choice(tops)
    under = scene.at(shape.col, 1)
    right = f"a {under.kind}" if under else "nothing"
    wrong = [f"a {k}" for k in KINDS if f"a {k}" != right] + ([] if right == "nothing" else ["nothing"])
    return _make(rng, f"What is directly below the {shape.kind}?", right, wrong, "physical_relation", RR)


WRITERS: tuple[Callable[[Scene, random.Random], Question | None], ...] = (
    _scene_question,
    _color,
    _ocr,
    _where,
    _side,
    _same_color,
    _count,
    _french,
    _below,
)


@dataclass(frozen=True)
class DemoQuestion:
    index: int
    scene_index: int
    scene: Scene
    question: Question
    hint: str | None


def plan(seed: int, hint_text: str = HINT) -> list[DemoQuestion]:
    """The base questions, in index order, without writing anything (``hint_text``: the hint some get)."""
    out: list[DemoQuestion] = []
    scene_index = SCENE_INDEX_BASE
    for number in range(N_QUESTIONS):
        writer = WRITERS[number % len(WRITERS)]
        for _ in range(MAX_DRAWS):
            scene = make_scene(seed, "eval", scene_index)
            scene_index += 1
            rng = random.Random(f"{seed}:mmbench:{scene_index}")
            question = writer(scene, rng)
            if question is not None:
                break
        else:
            raise RuntimeError(f"no scene for an MMBench {writer.__name__} question in {MAX_DRAWS} draws")
        hint = hint_text if rng.random() < HINT_PROBABILITY else None
        out.append(DemoQuestion(number + 1, scene_index - 1, scene, question, hint))
    return out


def rotated(question: Question, k: int) -> tuple[tuple[str, ...], int]:
    """Copy ``k`` of a question: options shifted k places to the right, answer position moved along."""
    n = len(question.options)
    return tuple(question.options[(i - k) % n] for i in range(n)), (question.answer + k) % n


def _png_base64(scene: Scene) -> str:
    buffer = io.BytesIO()
    render(scene, IMAGE_SIZE).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def write_demo(root: Path, seed: int) -> None:
    """Write ``root/mmbench/mmbench_dev_20230712.tsv``."""
    write_tsv(Path(root) / "mmbench" / "mmbench_dev_20230712.tsv", seed)


def write_tsv(path: Path, seed: int, hint_text: str = HINT) -> None:
    """Write the demo questions and their circular copies as a legacy-layout TSV at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    items = plan(seed, hint_text)
    images = {item.index: _png_base64(item.scene) for item in items}
    rows: list[list[str]] = []
    for k in range(4):
        for item in items:
            q = item.question
            if k >= len(q.options):
                continue
            options, answer = rotated(q, k)
            cells = [*options, *[""] * (4 - len(options))]
            rows.append(
                [
                    str(item.index + k * ROUND),
                    q.text,
                    item.hint or "",
                    *cells,
                    LETTERS[answer],
                    q.category,
                    images[item.index],
                    "demo",
                    q.l2,
                    "",
                    "dev",
                ]
            )
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(rows)
    path.write_bytes(buffer.getvalue().encode("utf-8"))
