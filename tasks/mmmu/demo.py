"""MMMU demo data: synthetic validation questions about demo scenes, in the layout ``data prepare`` writes.

Writes under ``<root>/mmmu``: ``anns_for_eval.json`` (TinyLLaVA's fields + the dataset's), ``answer_dict_val.json``
(MMMU's ground-truth file) and ``all_images/<id>_image_<N>.png``. Five questions in each of six subjects
(one per discipline), ids ``validation_<Subject>_<n>``: multiple-choice questions (2 to 4 options) about
the colours, shapes and background of ``make_scene(seed, "eval", 8000 + k)``, open questions whose
answer is a count (a number) or a word, and, as in MMMU, ``<image N>`` marks in the question text. The
last question of each subject shows two scenes (``image_1`` and ``image_2``) and asks about the second;
one question names its option images as ``<img='...'>`` (TinyLLaVA gives the model no image there).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from tasks.demo.choices import shuffled_choices
from tasks.demo.scenes import BACKGROUNDS, COLORS, KINDS, Scene, make_scene, render
from tasks.mmmu.files import MULTIPLE_CHOICE, answer_entry, letters, question_entry

SUBJECTS = ("Art", "Accounting", "Biology", "Clinical_Medicine", "History", "Computer_Science")
PER_SUBJECT = 5
SCENE_INDEX_BASE = 8000  # eval-split scene indices used here (LLaVA-Bench uses 7000..)
IMAGE_SIZE = 96


@dataclass(frozen=True)
class DemoQuestion:
    question: str
    question_type: str
    options: tuple[str, ...]
    answer: str  # a letter, or the open answer


def _choice(rng: random.Random, question: str, right: str, wrong: list[str]) -> DemoQuestion:
    choices = shuffled_choices(rng, right, wrong, most_wrong=3)
    return DemoQuestion(question, MULTIPLE_CHOICE, choices.options, letters(len(choices.options))[choices.answer])


def _ask(scene: Scene, rng: random.Random, kind: int, mark: str) -> DemoQuestion:
    """One question about ``scene``, which the text calls ``mark`` (e.g. ``<image 1>``)."""
    if kind == 0:
        shape = scene.shapes[0]
        wrong = [c for c in COLORS if c != shape.color]
        return _choice(rng, f"What color is the first {shape.kind} in {mark}?", shape.color, wrong)
    if kind == 1:
        wrong = [b for b in BACKGROUNDS if b != scene.background]
        return _choice(rng, f"Which color is the background of {mark}?", scene.background, wrong)
    if kind == 2:
        return DemoQuestion(f"How many shapes are in {mark}?", "open", (), str(len(scene.shapes)))
    if kind == 3:
        shape = scene.shapes[-1]
        return DemoQuestion(f"Name the kind of the last shape in {mark}.", "open", (), shape.kind)
    wrong = [k for k in KINDS if k != scene.shapes[0].kind]
    return _choice(rng, f"{mark} shows shapes. Which kind comes first?", scene.shapes[0].kind, wrong)


def write_demo(root: Path, seed: int) -> None:
    """Write the MMMU demo files under ``root/mmmu``."""
    base = Path(root) / "mmmu"
    images_dir = base / "all_images"
    images_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"{seed}:mmmu")
    entries, answers = [], {}
    index = SCENE_INDEX_BASE
    for subject in SUBJECTS:
        for number in range(1, PER_SUBJECT + 1):
            sid = f"validation_{subject}_{number}"
            n_images = 2 if number == PER_SUBJECT else 1
            scenes = []
            for _ in range(n_images):
                scenes.append(make_scene(seed, "eval", index))
                index += 1
            images = {}
            for k, scene in enumerate(scenes, start=1):
                name = f"{sid}_image_{k}.png"
                render(scene, IMAGE_SIZE).save(images_dir / name)
                images[f"image_{k}"] = name
            mark = f"<image {n_images}>"
            q = _ask(scenes[-1], rng, (number + len(entries)) % 5, mark)
            text = q.question if n_images == 1 else f"<image 1> is a warm-up. {q.question}"
            options = list(q.options)
            if subject == "History" and number == 1 and options:
                options = [f"{o} <img='./opt{i}.png'>" for i, o in enumerate(options)]
            extra = {"subfield": f"demo {subject.lower()}", "topic_difficulty": "Easy", "img_type": "['Diagrams']"}
            entries.append(question_entry(sid, text, q.question_type, options, q.answer, images, extra))
            answers[sid] = answer_entry(q.question_type, q.answer)
    (base / "anns_for_eval.json").write_bytes(json.dumps(entries, indent=1).encode())
    (base / "answer_dict_val.json").write_bytes(json.dumps(answers, indent=1).encode())
