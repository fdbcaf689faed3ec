"""ScienceQA demo data: synthetic multiple-choice problems in the official ScienceQA and LLaVA layouts.

Writes under ``<root>/scienceqa`` (LLaVA's ``playground/data/eval/scienceqa`` layout):

- ``problems.json``: every problem with the full official schema (question, choices, answer, hint,
  image, task, grade, subject, topic, category, skill, lecture, solution, split);
- ``pid_splits.json``: the official split lists (train, val, test, trainval, minitrain, minival,
  minitest);
- ``llava_test_CQM-A.json``: LLaVA's question file for the test split, as in eval.zip:
  ``{id, image?, conversations: [human, gpt]}``, the human turn ``[<image>\\n][Context: hint\\n]``
  + question + ``\\nA. option`` lines, the gpt turn the answer letter;
- ``images/test/<id>/image.png``: test image ``<id>`` shows ``make_scene(seed, "eval", 4000 + n)``.

Test problems about a scene (colors, counts, shapes, the word, the background) have an image; a
few word problems (French translations) are text-only, like ScienceQA's language problems. The
train and val problems are text-only, so only test images are written.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from tasks.demo.choices import shuffled_choices
from tasks.demo.scenes import BACKGROUNDS, COLORS, KINDS, NUMBER_WORDS, WORDS, Scene, make_scene, render

N_IMAGE_PROBLEMS = 34
N_TEXT_PROBLEMS = 6
N_TRAIN, N_VAL = 8, 4
SCENE_INDEX_BASE = 4000  # eval-split scene indices used here (GQA 0.., MME 1000.., VQAv2 2000.., TextVQA 3000..)
IMAGE_SIZE = 96
MAX_DRAWS = 200
OPTIONS = "ABCDE"


@dataclass(frozen=True)
class Problem:
    """One generated problem: question, choices, answer index and its ScienceQA annotations."""

    question: str
    choices: tuple[str, ...]
    answer: int
    hint: str
    topic: str
    category: str
    skill: str
    subject: str = "natural science"


def _ask(
    rng: random.Random, question: str, right: str, wrong: list[str], hint: str, topic: str, category: str, skill: str
) -> Problem:
    """A problem with ``right`` among 1-4 wrong choices, shuffled."""
    choices = shuffled_choices(rng, right, wrong, most_wrong=4)
    return Problem(question, choices.options, choices.answer, hint, topic, category, skill)


def _color(scene: Scene, rng: random.Random) -> Problem | None:
    shape = scene.pick_by_kind(rng)
    if shape is None:
        return None
    wrong = [c for c in COLORS if c != shape.color]
    return _ask(rng, f"What color is the {shape.kind}?", shape.color, wrong, "", "colors", "Identify colors", "colors")


def _count(scene: Scene, rng: random.Random) -> Problem | None:
    n = len(scene.shapes)
    wrong = [NUMBER_WORDS[i] for i in range(1, 6) if i != n]
    hint = "Count every shape in the picture."
    return _ask(rng, "How many shapes are in the picture?", NUMBER_WORDS[n], wrong, hint, "counting", "Count", "count")


def _shape(scene: Scene, rng: random.Random) -> Problem | None:
    shape = scene.pick_by_color(rng)
    if shape is None:
        return None
    wrong = [k for k in KINDS if k != shape.kind]
    return _ask(rng, f"Which shape is {shape.color}?", shape.kind, wrong, "", "shapes", "Identify shapes", "shapes")


def _word(scene: Scene, rng: random.Random) -> Problem | None:
    if not scene.word:
        return None
    wrong = [w for w in WORDS if w != scene.word]
    hint = "The word is printed at the bottom of the picture."
    return _ask(rng, "Which word is written in the picture?", scene.word, wrong, hint, "reading", "Read", "reading")


def _background(scene: Scene, rng: random.Random) -> Problem | None:
    wrong = [b for b in BACKGROUNDS if b != scene.background]
    return _ask(
        rng, "What color is the background?", scene.background, wrong, "", "colors", "Identify colors", "background"
    )


SCENE_WRITERS: tuple[Callable[[Scene, random.Random], Problem | None], ...] = (
    _color,
    _count,
    _shape,
    _word,
    _background,
)


def _translation(rng: random.Random) -> Problem:
    english = rng.choice(list(WORDS))
    wrong = [f for e, f in WORDS.items() if e != english]
    problem = _ask(
        rng,
        f"Which French word means '{english}'?",
        WORDS[english],
        wrong,
        "A translation gives the same meaning in another language.",
        "vocabulary",
        "Translate words",
        "translation",
    )
    return replace(problem, subject="language science")


@dataclass(frozen=True)
class DemoProblem:
    pid: str
    split: str
    problem: Problem
    scene_index: int | None  # None: no image
    scene: Scene | None


def plan(seed: int) -> list[DemoProblem]:
    """All demo problems (test first, in id order), without writing anything."""
    rng = random.Random(f"{seed}:scienceqa")
    out: list[DemoProblem] = []
    index = SCENE_INDEX_BASE
    text_slots = set(rng.sample(range(N_IMAGE_PROBLEMS + N_TEXT_PROBLEMS), N_TEXT_PROBLEMS))
    for number in range(N_IMAGE_PROBLEMS + N_TEXT_PROBLEMS):
        pid = str(number + 1)
        if number in text_slots:
            out.append(DemoProblem(pid, "test", _translation(rng), None, None))
            continue
        writer = SCENE_WRITERS[number % len(SCENE_WRITERS)]
        for _ in range(MAX_DRAWS):
            scene = make_scene(seed, "eval", index)
            index += 1
            problem = writer(scene, random.Random(f"{seed}:scienceqa:{index}"))
            if problem is not None:
                break
        else:
            raise RuntimeError(f"no scene for a {writer.__name__} problem in {MAX_DRAWS} draws")
        out.append(DemoProblem(pid, "test", problem, index - 1, scene))
    first = len(out) + 1
    for offset in range(N_TRAIN + N_VAL):
        split = "train" if offset < N_TRAIN else "val"
        out.append(DemoProblem(str(first + offset), split, _translation(rng), None, None))
    return out


def llava_human_turn(item: DemoProblem) -> str:
    """The first human turn of LLaVA's CQM-A question file for one problem."""
    p = item.problem
    text = f"Context: {p.hint}\n" if p.hint else ""
    text += p.question + "".join(f"\n{OPTIONS[i]}. {c}" for i, c in enumerate(p.choices))
    return f"<image>\n{text}" if item.scene is not None else text


def _record(item: DemoProblem) -> dict:
    p = item.problem
    return {
        "question": p.question,
        "choices": list(p.choices),
        "answer": p.answer,
        "hint": p.hint,
        "image": "image.png" if item.scene is not None else None,
        "task": "closed choice",
        "grade": "grade2",
        "subject": p.subject,
        "topic": p.topic,
        "category": p.category,
        "skill": p.skill,
        "lecture": "",
        "solution": f"The answer is {p.choices[p.answer]}.",
        "split": item.split,
    }


def write_demo(root: Path, seed: int) -> None:
    """Write the ScienceQA demo files under ``root/scienceqa``."""
    base = Path(root) / "scienceqa"
    base.mkdir(parents=True, exist_ok=True)
    items = plan(seed)
    problems = {item.pid: _record(item) for item in items}
    ids = {split: [i.pid for i in items if i.split == split] for split in ("train", "val", "test")}
    splits = {
        **ids,
        "trainval": ids["train"] + ids["val"],
        "minitrain": ids["train"][: len(ids["train"]) // 2],
        "minival": ids["val"][: len(ids["val"]) // 2],
        "minitest": ids["test"][: len(ids["test"]) // 4],
    }
    questions = []
    for item in items:
        if item.split != "test":
            continue
        entry: dict = {"id": item.pid}
        if item.scene is not None:
            entry["image"] = f"{item.pid}/image.png"
            folder = base / "images/test" / item.pid
            folder.mkdir(parents=True, exist_ok=True)
            render(item.scene, IMAGE_SIZE).save(folder / "image.png")
        entry["conversations"] = [
            {"from": "human", "value": llava_human_turn(item)},
            {"from": "gpt", "value": OPTIONS[item.problem.answer]},
        ]
        questions.append(entry)
    (base / "problems.json").write_bytes(json.dumps(problems, indent=1).encode())
    (base / "pid_splits.json").write_bytes(json.dumps(splits, indent=1).encode())
    (base / "llava_test_CQM-A.json").write_bytes(json.dumps(questions, indent=1).encode())
