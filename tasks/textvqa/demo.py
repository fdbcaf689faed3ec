"""TextVQA demo data: synthetic scenes with a word, reading questions, ten human-like answers each.

Writes under ``<root>/textvqa`` (LLaVA's ``playground/data/eval/textvqa`` layout):

- ``TextVQA_0.5.1_val.json``: the official schema (``dataset_type``, ``dataset_name``,
  ``dataset_version``, ``data`` items with every field: question, image_id, image_classes, the two
  Flickr URLs, image size, ten answers, question_tokens, question_id, set_name);
- ``llava_textvqa_val_v051_ocr.jsonl``: LLaVA's question file (``question_id`` = image id, text =
  capitalised question, ``Reference OCR token: ...`` built from the scene's word, the suffix);
- ``train_images/<image_id>.jpg``.

Only eval-split scenes that show a word are used (indices from 3000 on; GQA uses 0.., MME 1000..,
VQA-v2 2000..). Answers vary in case, trailing periods and number words, which the EvalAI processor
maps to the canonical answer; some annotators give a wrong one.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.data.prepare import write_jsonl
from tasks.common.question_file import question_line
from tasks.demo.answers import AnswerSpec, human_answers, number_spellings
from tasks.demo.scenes import Scene, make_scene, render
from tasks.textvqa.prepare import llava_text

SCENE_INDEX_BASE = 3000
N_IMAGES = 14
QUESTIONS_PER_IMAGE = 3
QUESTION_ID_BASE = 34602  # the first val question id of the real release
IMAGE_SIZE = 96
JPEG_QUALITY = 95
MAX_DRAWS = 200
OCR_NOISE = ("ST", "N", "CC", "ED", "OR")


@dataclass(frozen=True)
class DemoQuestion:
    question: str  # lower-case, as in the release
    spec: AnswerSpec

    @property
    def answer(self) -> str:
        return self.spec.answer


def _letters(value: str) -> AnswerSpec:
    """A letter answer: its spellings, and the next letter of the alphabet as the wrong one."""
    return AnswerSpec(value, (value.upper(), f"{value}."), (chr((ord(value) - ord("a") + 1) % 26 + ord("a")),))


def _word(scene: Scene) -> DemoQuestion:
    word = scene.word or ""
    spec = AnswerSpec(word, (word.upper(), word.capitalize(), f"{word}."), (f"{word}s",))
    return DemoQuestion("what word is written in the image?", spec)


def _length(scene: Scene) -> DemoQuestion:
    n = len(scene.word or "")
    spec = AnswerSpec(str(n), number_spellings(n), (str(n + 1), f"{n} letters"))
    return DemoQuestion("how many letters does the word have?", spec)


def _first(scene: Scene) -> DemoQuestion:
    word = scene.word or ""
    return DemoQuestion("what is the first letter of the word?", _letters(word[0]))


def _last(scene: Scene) -> DemoQuestion:
    word = scene.word or ""
    return DemoQuestion("what is the last letter of the word?", _letters(word[-1]))


def _ink(scene: Scene) -> DemoQuestion:
    spec = AnswerSpec("black", ("Black", "BLACK", "black."), ("gray", "dark gray"))
    return DemoQuestion("what color is the text?", spec)


TEMPLATES: tuple[Callable[[Scene], DemoQuestion], ...] = (_word, _length, _first, _last, _ink)


@dataclass(frozen=True)
class DemoImage:
    image_id: str
    scene_index: int
    scene: Scene
    ocr_tokens: tuple[str, ...]
    questions: tuple[tuple[int, DemoQuestion, tuple[str, ...]], ...]  # (question_id, question, ten answers)


def image_id_for(seed: int, index: int) -> str:
    """A 16-hex-digit image id, like the release's."""
    return hashlib.sha256(f"textvqa-demo:{seed}:{index}".encode()).hexdigest()[:16]


def plan(seed: int, n_images: int = N_IMAGES) -> list[DemoImage]:
    """The demo images (scenes with a word), their OCR tokens, questions and answers, without writing."""
    images: list[DemoImage] = []
    index = SCENE_INDEX_BASE
    next_qid = QUESTION_ID_BASE
    for _ in range(n_images):
        for _ in range(MAX_DRAWS):
            scene = make_scene(seed, "eval", index)
            index += 1
            if scene.word:
                break
        else:
            raise RuntimeError(f"no scene with a word in {MAX_DRAWS} draws")
        rng = random.Random(f"{seed}:textvqa:{index - 1}")
        roll = rng.random()
        tokens: tuple[str, ...] = () if roll < 0.1 else (scene.word.upper(),)
        if roll > 0.6:
            tokens += (rng.choice(OCR_NOISE),)
        questions = []
        for template in rng.sample(TEMPLATES, QUESTIONS_PER_IMAGE):
            q = template(scene)
            questions.append((next_qid, q, tuple(human_answers(rng, q.spec))))
            next_qid += 1
        images.append(DemoImage(image_id_for(seed, index - 1), index - 1, scene, tokens, tuple(questions)))
    return images


def annotation(image: DemoImage, qid: int, question: DemoQuestion, answers: tuple[str, ...]) -> dict[str, Any]:
    """One ``data`` item of the release, every field."""
    return {
        "question": question.question,
        "image_id": image.image_id,
        "image_classes": ["Poster", "Text"],
        "flickr_original_url": f"https://demo.invalid/textvqa/{image.image_id}_o.jpg",
        "flickr_300k_url": f"https://demo.invalid/textvqa/{image.image_id}_z.jpg",
        "image_width": IMAGE_SIZE,
        "image_height": IMAGE_SIZE,
        "answers": list(answers),
        "question_tokens": re.findall(r"[a-z0-9']+", question.question),
        "question_id": qid,
        "set_name": "val",
    }


def write_demo(root: Path, seed: int) -> None:
    """Write the TextVQA demo files under ``root/textvqa``."""
    base = Path(root) / "textvqa"
    image_dir = base / "train_images"
    image_dir.mkdir(parents=True, exist_ok=True)
    data: list[dict[str, Any]] = []
    lines: list[dict[str, Any]] = []
    for image in plan(seed):
        render(image.scene, IMAGE_SIZE).save(image_dir / f"{image.image_id}.jpg", quality=JPEG_QUALITY)
        for qid, question, answers in image.questions:
            data.append(annotation(image, qid, question, answers))
            text = llava_text(question.question, image.ocr_tokens)
            lines.append(question_line(image.image_id, f"{image.image_id}.jpg", text))
    release = {"dataset_type": "val", "dataset_name": "textvqa", "dataset_version": "0.5.1", "data": data}
    (base / "TextVQA_0.5.1_val.json").write_bytes(json.dumps(release).encode())
    write_jsonl(base / "llava_textvqa_val_v051_ocr.jsonl", lines)
