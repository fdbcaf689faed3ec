"""VQA-v2 demo data: synthetic scenes with VQA-style questions and ten human-like answers each.

``write_val_demo`` (task ``vqav2_val``) writes under ``<root>/vqav2``:

- ``v2_OpenEnded_mscoco_val2014_questions.json`` and ``v2_mscoco_val2014_annotations.json`` with the
  full official schemas (info, license, task/data type, data_subtype; ten answers with
  ``answer_confidence`` and ``answer_id``; ``question_type`` the longest of the official 64 prefixes
  the question starts with (65 types with "none of the above"); ``answer_type``; ``multiple_choice_answer``);
- ``val2014/COCO_val2014_<12-digit image id>.jpg``.

``write_test_demo`` (task ``vqav2``) writes LLaVA's ``llava_vqav2_mscoco_test2015.jsonl`` (every
question) and ``llava_vqav2_mscoco_test-dev2015.jsonl`` (a subset: every third image is test-std
only), and ``test2015/COCO_test2015_<12-digit image id>.jpg``.

The ten answers vary as people's do: the canonical answer, spellings the VQA normalisation maps to
it (``two`` for ``2``, ``Red``, ``a circle``, ``top-left``) and sometimes a wrong one; some
questions get ten identical answers, where the official scorer compares without normalising.
Image ids are the eval-split scene indices (val from 2000, test from 2500; GQA uses 0.., MME 1000..);
question id = image id x 1000 + question number.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.common.requests import LLAVA_SUFFIX
from tasks.demo.scenes import BACKGROUNDS, COLORS, KINDS, Scene, make_scene, render

VAL_SCENE_BASE = 2000
TEST_SCENE_BASE = 2500
VAL_IMAGES = 14
TEST_IMAGES = 20
QUESTIONS_PER_IMAGE = 3
IMAGE_SIZE = 96
JPEG_QUALITY = 95
UNIFORM_PROBABILITY = 0.25  # share of questions whose ten answers are identical
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
# GT-Vision-Lab/VQA QuestionTypes/mscoco_question_types.txt, in file order: 64 prefixes. With the
# fallback type "none of the above" (questions that start with none of them) they are the 65 types.
QUESTION_TYPES = (
    "how many", "is the", "what", "what color is the", "what is the", "is this", "is this a", "what is",
    "are the", "what kind of", "is there a", "what type of", "is it", "what are the", "where is the",
    "is there", "does the", "what color are the", "are these", "are there", "which", "is", "what is the man",
    "is the man", "are", "how", "does this", "what is on the", "what does the", "how many people are",
    "what is in the", "what is this", "do", "what are", "are they", "what time", "what sport is",
    "are there any", "is he", "what color is", "why", "where are the", "what color", "who is",
    "what animal is", "is the woman", "is this an", "do you", "how many people are in", "what room is",
    "has", "is this person", "what is the woman", "can you", "why is the", "is the person",
    "what is the color of the", "what is the person", "could", "was", "is that a", "what number is",
    "what is the name", "what brand",
)  # fmt: skip
NONE_OF_THE_ABOVE = "none of the above"
DEMO_INFO = {
    "description": "Synthetic demo data in the VQA v2.0 format (generated shapes, not the VQA dataset).",
    "url": "http://visualqa.org",
    "version": "2.0",
    "year": 2017,
    "contributor": "tinyllava-harness demo generator",
    "date_created": "2017-04-26 17:07:13",
}
DEMO_LICENSE = {
    "url": "http://creativecommons.org/licenses/by/4.0/",
    "name": "Creative Commons Attribution 4.0 International License",
}


@dataclass(frozen=True)
class DemoQuestion:
    """A question, its canonical answer, spellings that normalise to it, and wrong answers people give."""

    text: str
    answer_type: str
    answer: str
    variants: tuple[str, ...]
    wrong: tuple[str, ...]

    @property
    def question_type(self) -> str:
        return question_type(self.text)


def question_type(question: str) -> str:
    """The longest official question-type prefix of ``question`` (lower-cased), else "none of the above"."""
    text = question.lower()
    return max((t for t in QUESTION_TYPES if text.startswith(t + " ") or text == t), key=len, default=NONE_OF_THE_ABOVE)


def human_answers(rng: random.Random, canonical: str, variants: Sequence[str], wrong: Sequence[str]) -> list[str]:
    """Ten answers: all canonical (sometimes), else 5-8 canonical, variants, maybe one or two wrong, shuffled.

    The canonical answer always has at least five votes, so it scores 1 under every VQA scorer.
    """
    if rng.random() < UNIFORM_PROBABILITY or not (variants or wrong):
        return [canonical] * 10
    n_canonical = rng.randint(5, 8)
    n_wrong = min(rng.randint(0, 2), 10 - n_canonical) if wrong else 0
    rest = 10 - n_canonical - n_wrong
    pool = list(variants) or [canonical]
    answers = [canonical] * n_canonical + [rng.choice(pool) for _ in range(rest)]
    answers += [rng.choice(list(wrong)) for _ in range(n_wrong)]
    rng.shuffle(answers)
    return answers


def _number(n: int) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    variants = (NUMBER_WORDS[n], NUMBER_WORDS[n].capitalize(), f"{n} ")
    if n == 0:
        variants += ("none",)
    return str(n), variants, (str(n + 1),) if n == 0 else (str(n - 1), str(n + 1))


def _word(value: str, others: Sequence[str], article: bool = False) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    variants = [value.capitalize(), f"{value}.", value.upper()]
    if article:
        variants += [f"a {value}", f"the {value}"]
    return value, tuple(variants), tuple(o for o in others if o != value)


def _yes_no(value: bool) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    answer = "yes" if value else "no"
    other = "no" if value else "yes"
    return answer, (answer.capitalize(), f"{answer}!", f"{answer}."), (other,)


def _q(text: str, answer_type: str, spec: tuple[str, tuple[str, ...], tuple[str, ...]]) -> DemoQuestion:
    return DemoQuestion(text, answer_type, spec[0], spec[1], spec[2])


Template = Callable[[Scene, random.Random], "DemoQuestion | None"]


def _count_all(scene: Scene, rng: random.Random) -> DemoQuestion | None:
    return _q("How many shapes are there?", "number", _number(len(scene.shapes)))


def _count_kind(scene: Scene, rng: random.Random) -> DemoQuestion | None:
    kind = rng.choice(KINDS)
    return _q(f"How many {kind}s are in the picture?", "number", _number(scene.count(kind=kind)))


def _color_of(scene: Scene, rng: random.Random) -> DemoQuestion | None:
    if not scene.unique_kinds():
        return None
    shape = scene.the(kind=rng.choice(scene.unique_kinds()))
    return _q(f"What color is the {shape.kind}?", "other", _word(shape.color, list(COLORS)))


def _any_of(scene: Scene, rng: random.Random) -> DemoQuestion | None:
    kind, color = rng.choice(KINDS), rng.choice(list(COLORS))
    return _q(f"Are there any {color} {kind}s?", "yes/no", _yes_no(scene.has(kind, color)))


def _is_color(scene: Scene, rng: random.Random) -> DemoQuestion | None:
    if not scene.unique_kinds():
        return None
    shape = scene.the(kind=rng.choice(scene.unique_kinds()))
    color = rng.choice([shape.color, rng.choice(list(COLORS))])
    return _q(f"Is the {shape.kind} {color}?", "yes/no", _yes_no(shape.color == color))


def _which_shape(scene: Scene, rng: random.Random) -> DemoQuestion | None:
    if not scene.unique_colors():
        return None
    shape = scene.the(color=rng.choice(scene.unique_colors()))
    return _q(f"Which shape is {shape.color}?", "other", _word(shape.kind, KINDS, article=True))


def _background(scene: Scene, rng: random.Random) -> DemoQuestion | None:
    return _q("What color is the background?", "other", _word(scene.background, list(BACKGROUNDS)))


def _where(scene: Scene, rng: random.Random) -> DemoQuestion | None:
    if not scene.unique_kinds():
        return None
    shape = scene.the(kind=rng.choice(scene.unique_kinds()))
    corners = ("top left", "top right", "bottom left", "bottom right")
    wrong = tuple(c for c in corners if c != shape.position)
    variants = (shape.position.replace(" ", "-"), shape.position.capitalize(), f"the {shape.position}")
    return _q(f"Where is the {shape.kind}?", "other", (shape.position, variants, wrong))


def _is_left(scene: Scene, rng: random.Random) -> DemoQuestion | None:
    if not scene.unique_kinds():
        return None
    shape = scene.the(kind=rng.choice(scene.unique_kinds()))
    return _q(f"Is the {shape.kind} on the left?", "yes/no", _yes_no(shape.side == "left"))


def _word_q(scene: Scene, rng: random.Random) -> DemoQuestion | None:
    if not scene.word:
        return None
    return _q("What word is written at the bottom?", "other", _word(scene.word, ["cat", "dog", "sun"]))


TEMPLATES: tuple[Template, ...] = (
    _count_all, _count_kind, _color_of, _any_of, _is_color, _which_shape, _background, _where, _is_left, _word_q,
)  # fmt: skip


def make_questions(scene: Scene, rng: random.Random, count: int = QUESTIONS_PER_IMAGE) -> list[DemoQuestion]:
    """``count`` questions from distinct templates that apply to the scene."""
    templates = list(TEMPLATES)
    rng.shuffle(templates)
    out: list[DemoQuestion] = []
    for template in templates:
        question = template(scene, rng)
        if question is not None:
            out.append(question)
        if len(out) == count:
            break
    return out


@dataclass(frozen=True)
class DemoImage:
    image_id: int
    scene: Scene
    questions: tuple[tuple[int, DemoQuestion, tuple[str, ...]], ...]  # (question_id, question, ten answers)


def plan(seed: int, base: int, n_images: int, tag: str) -> list[DemoImage]:
    """The demo images (scene index = image id) with their questions and answers, without writing."""
    images = []
    for image_id in range(base, base + n_images):
        scene = make_scene(seed, "eval", image_id)
        rng = random.Random(f"{seed}:{tag}:{image_id}")
        questions = []
        for k, question in enumerate(make_questions(scene, rng)):
            answers = human_answers(rng, question.answer, question.variants, question.wrong)
            questions.append((image_id * 1000 + k, question, tuple(answers)))
        images.append(DemoImage(image_id, scene, tuple(questions)))
    return images


def _save(image: DemoImage, folder: Path, subtype: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"COCO_{subtype}_{image.image_id:012d}.jpg"
    render(image.scene, IMAGE_SIZE).save(path, quality=JPEG_QUALITY)


def _confidence(rng: random.Random) -> str:
    return rng.choices(["yes", "maybe", "no"], weights=[8, 2, 1])[0]


def write_val_demo(root: Path, seed: int) -> None:
    """val2014-format questions, annotations and images under ``root/vqav2``."""
    base = Path(root) / "vqav2"
    questions: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for image in plan(seed, VAL_SCENE_BASE, VAL_IMAGES, "vqav2_val"):
        _save(image, base / "val2014", "val2014")
        rng = random.Random(f"{seed}:vqav2_val:confidence:{image.image_id}")
        for qid, question, answers in image.questions:
            questions.append({"image_id": image.image_id, "question": question.text, "question_id": qid})
            annotations.append(
                {
                    "question_type": question.question_type,
                    "multiple_choice_answer": question.answer,
                    "answers": [
                        {"answer": a, "answer_confidence": _confidence(rng), "answer_id": i}
                        for i, a in enumerate(answers, start=1)
                    ],
                    "image_id": image.image_id,
                    "answer_type": question.answer_type,
                    "question_id": qid,
                }
            )
    common = {"info": DEMO_INFO, "license": DEMO_LICENSE, "data_subtype": "val2014", "data_type": "mscoco"}
    q_file = {**common, "task_type": "Open-Ended", "questions": questions}
    a_file = {**common, "annotations": annotations}
    (base / "v2_OpenEnded_mscoco_val2014_questions.json").write_bytes(json.dumps(q_file).encode())
    (base / "v2_mscoco_val2014_annotations.json").write_bytes(json.dumps(a_file).encode())


def in_test_dev(image: DemoImage) -> bool:
    """Whether a demo test2015 image belongs to test-dev (two images in three do)."""
    return (image.image_id - TEST_SCENE_BASE) % 3 != 2


def write_test_demo(root: Path, seed: int) -> None:
    """LLaVA's test2015 and test-dev question files and the test2015 images under ``root/vqav2``."""
    base = Path(root) / "vqav2"
    every: list[str] = []
    dev: list[str] = []
    for image in plan(seed, TEST_SCENE_BASE, TEST_IMAGES, "vqav2_test"):
        _save(image, base / "test2015", "test2015")
        for qid, question, _ in image.questions:
            line = {
                "question_id": qid,
                "image": f"COCO_test2015_{image.image_id:012d}.jpg",
                "text": question.text + LLAVA_SUFFIX,
                "category": "default",
            }
            every.append(json.dumps(line) + "\n")
            if in_test_dev(image):
                dev.append(json.dumps(line) + "\n")
    (base / "llava_vqav2_mscoco_test2015.jsonl").write_bytes("".join(every).encode())
    (base / "llava_vqav2_mscoco_test-dev2015.jsonl").write_bytes("".join(dev).encode())
