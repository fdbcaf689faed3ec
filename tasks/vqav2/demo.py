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

from harness.data.prepare import write_jsonl
from tasks.common.question_file import question_line
from tasks.common.requests import LLAVA_SUFFIX
from tasks.demo.answers import AnswerSpec, human_answers, number_spellings
from tasks.demo.scenes import BACKGROUNDS, COLORS, KINDS, Scene, make_scene, render

VAL_SCENE_BASE = 2000
TEST_SCENE_BASE = 2500
VAL_IMAGES = 14
TEST_IMAGES = 20
QUESTIONS_PER_IMAGE = 3
IMAGE_SIZE = 96
JPEG_QUALITY = 95
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
    """A question, its official answer type, and its answers (canonical, variants, wrong ones)."""

    text: str
    answer_type: str
    spec: AnswerSpec

    @property
    def answer(self) -> str:
        return self.spec.answer

    @property
    def question_type(self) -> str:
        return question_type(self.text)


def question_type(question: str) -> str:
    """The longest official question-type prefix of ``question`` (lower-cased), else "none of the above"."""
    text = question.lower()
    return max((t for t in QUESTION_TYPES if text.startswith(t + " ") or text == t), key=len, default=NONE_OF_THE_ABOVE)


def _number(n: int) -> AnswerSpec:
    if n == 0:
        return AnswerSpec("0", (*number_spellings(0), "none"), ("1",))
    return AnswerSpec(str(n), number_spellings(n), (str(n - 1), str(n + 1)))


def _word(value: str, others: Sequence[str], article: bool = False) -> AnswerSpec:
    variants = [value.capitalize(), f"{value}.", value.upper()]
    if article:
        variants += [f"a {value}", f"the {value}"]
    return AnswerSpec(value, tuple(variants), tuple(o for o in others if o != value))


def _yes_no(value: bool) -> AnswerSpec:
    answer = "yes" if value else "no"
    other = "no" if value else "yes"
    return AnswerSpec(answer, (answer.capitalize(), f"{answer}!", f"{answer}."), (other,))


Template = Callable[[Scene, random.Random], "DemoQuestion | None"]


def _count_all(scene: Scene, rng: random.Random) -> DemoQuestion | None:
    return DemoQuestion("How many shapes are there?", "number", _number(len(scene.shapes)))


def _count_kind(scene: Scene, rng: random.Random) -> DemoQuestion | None:
    kind = rng.choice(KINDS)
    return DemoQuestion(f"How many {kind}s are in the picture?", "number", _number(scene.count(kind=kind)))


def _color_of(scene: Scene, rng: random.Random) -> DemoQuestion | None:
    shape = scene.pick_by_kind(rng)
    if shape is None:
        return None
    return DemoQuestion(f"What color is the {shape.kind}?", "other", _word(shape.color, list(COLORS)))


def _any_of(scene: Scene, rng: random.Random) -> DemoQuestion | None:
    kind, color = rng.choice(KINDS), rng.choice(list(COLORS))
    return DemoQuestion(f"Are there any {color} {kind}s?", "yes/no", _yes_no(scene.has(kind, color)))


def _is_color(scene: Scene, rng: random.Random) -> DemoQuestion | None:
    shape = scene.pick_by_kind(rng)
    if shape is None:
        return None
    color = rng.choice([shape.color, rng.choice(list(COLORS))])
    return DemoQuestion(f"Is the {shape.kind} {color}?", "yes/no", _yes_no(shape.color == color))


def _which_shape(scene: Scene, rng: random.Random) -> DemoQuestion | None:
    shape = scene.pick_by_color(rng)
    if shape is None:
        return None
    return DemoQuestion(f"Which shape is {shape.color}?", "other", _word(shape.kind, KINDS, article=True))


def _background(scene: Scene, rng: random.Random) -> DemoQuestion | None:
    return DemoQuestion("What color is the background?", "other", _word(scene.background, list(BACKGROUNDS)))


def _where(scene: Scene, rng: random.Random) -> DemoQuestion | None:
    shape = scene.pick_by_kind(rng)
    if shape is None:
        return None
    corners = ("top left", "top right", "bottom left", "bottom right")
    wrong = tuple(c for c in corners if c != shape.position)
    variants = (shape.position.replace(" ", "-"), shape.position.capitalize(), f"the {shape.position}")
    return DemoQuestion(f"Where is the {shape.kind}?", "other", AnswerSpec(shape.position, variants, wrong))


def _is_left(scene: Scene, rng: random.Random) -> DemoQuestion | None:
    shape = scene.pick_by_kind(rng)
    if shape is None:
        return None
    return DemoQuestion(f"Is the {shape.kind} on the left?", "yes/no", _yes_no(shape.side == "left"))


def _word_q(scene: Scene, rng: random.Random) -> DemoQuestion | None:
    if not scene.word:
        return None
    return DemoQuestion("What word is written at the bottom?", "other", _word(scene.word, ["cat", "dog", "sun"]))


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
            answers = human_answers(rng, question.spec)
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
    every: list[dict[str, Any]] = []
    dev: list[dict[str, Any]] = []
    for image in plan(seed, TEST_SCENE_BASE, TEST_IMAGES, "vqav2_test"):
        _save(image, base / "test2015", "test2015")
        name = f"COCO_test2015_{image.image_id:012d}.jpg"
        lines = [question_line(qid, name, question.text + LLAVA_SUFFIX) for qid, question, _ in image.questions]
        every.extend(lines)
        if in_test_dev(image):
            dev.extend(lines)
    write_jsonl(base / "llava_vqav2_mscoco_test2015.jsonl", every)
    write_jsonl(base / "llava_vqav2_mscoco_test-dev2015.jsonl", dev)
