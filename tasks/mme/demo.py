"""MME demo data: synthetic scenes with yes/no question pairs in the official MME layouts.

Writes under ``<root>/MME`` (LLaVA's ``playground/data/eval/MME`` layout):

- ``MME_Benchmark_release_version/<subtask>/``: for artwork, celebrity, landmark, posters and scene
  ``images/<name>`` + ``questions_answers_YN/<stem>.txt``; for the other nine the image and
  ``<stem>.txt`` side by side. Each ``.txt`` holds ``question<TAB>Yes`` then ``question<TAB>No``.
- ``eval_tool/Your_Results/<subtask>.txt``: ``image<TAB>question<TAB>Yes|No`` lines, pairs consecutive.
- ``llava_mme.jsonl``: LLaVA's question file.

Every subtask gets a synthetic analogue whose answer follows from the scene. As in the real ground
truth, one color question ends in the two-space variant "  Please answer yes or no.".
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from harness.data.prepare import write_jsonl
from tasks.common.question_file import question_line
from tasks.demo.scenes import BACKGROUNDS, COLORS, KINDS, NUMBER_WORDS, WORDS, Scene, make_scene, render, with_article
from tasks.mme.prepare import llava_text

PERCEPTION = ("existence", "count", "position", "color", "posters", "celebrity", "scene", "landmark", "artwork", "OCR")
COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")
SUBTASKS = PERCEPTION + COGNITION
NESTED = frozenset({"artwork", "celebrity", "landmark", "posters", "scene"})  # images/ + questions_answers_YN/
PNG_SUBTASKS = frozenset(COGNITION)
IMAGES_PER_SUBTASK = 2
IMAGE_SIZE = 96
JPEG_QUALITY = 95
SCENE_INDEX_BASE = 1000  # eval-split scene indices used here start at this (GQA's demo uses 0..)
MAX_DRAWS = 500  # scenes tried per image before giving up
SUFFIX = " Please answer yes or no."
ODD_SUFFIX = "  Please answer yes or no."  # the two-space variant of some real color/count/position lines
ODD_SPACED = ("color", 0)  # (subtask, image number) whose Yes question uses ODD_SUFFIX
RELEASE_DIR = "MME_Benchmark_release_version"
# Things of a well-known colour, for the commonsense questions.
COLOR_THINGS = {
    "red": "a ripe tomato",
    "green": "fresh grass",
    "blue": "a blueberry",
    "yellow": "a ripe banana",
    "purple": "an eggplant",
    "orange": "a carrot",
}

Pair = tuple[str, str]  # (question answered Yes, question answered No), without the suffix


@dataclass(frozen=True)
class DemoImage:
    """One MME demo image: where it goes, the scene it shows and its two questions (suffix included)."""

    subtask: str
    stem: str
    scene_index: int
    scene: Scene
    yes_question: str
    no_question: str

    @property
    def name(self) -> str:
        """Image file name, e.g. "0001.jpg"."""
        return f"{self.stem}.{'png' if self.subtask in PNG_SUBTASKS else 'jpg'}"

    @property
    def image_rel(self) -> str:
        """Image path under the subtask folder."""
        return f"images/{self.name}" if self.subtask in NESTED else self.name

    @property
    def txt_rel(self) -> str:
        """Question file path under the subtask folder."""
        return f"questions_answers_YN/{self.stem}.txt" if self.subtask in NESTED else f"{self.stem}.txt"


def _other(rng: random.Random, options: Iterable[object], not_this: object) -> str:
    """A random option other than ``not_this``."""
    return str(rng.choice([o for o in options if o != not_this]))


def _ask(template: str, yes_value: object, no_value: object) -> Pair:
    """The Yes and No questions of one template, filled with the true and a false value."""
    return template.format(yes_value), template.format(no_value)


def _existence(scene: Scene, rng: random.Random) -> Pair | None:
    shape = rng.choice(scene.shapes)
    kind, color = rng.choice([(k, c) for k in KINDS for c in COLORS if not scene.has(k, c)])
    present, absent = with_article(f"{shape.color} {shape.kind}"), with_article(f"{color} {kind}")
    return _ask("Is there {} in this image?", present, absent)


def _count(scene: Scene, rng: random.Random) -> Pair | None:
    n = len(scene.shapes)
    wrong = n + 1 if n == 1 else rng.choice([n - 1, n + 1])
    return _count_question(n), _count_question(wrong)


def _count_question(n: int) -> str:
    return "Is there one shape in this image?" if n == 1 else f"Are there {NUMBER_WORDS[n]} shapes in this image?"


def _position(scene: Scene, rng: random.Random) -> Pair | None:
    shapes = [scene.the(kind=k) for k in scene.unique_kinds()]
    pairs = [(a, b) for a in shapes for b in shapes if scene.left_of(a, b)]
    if not pairs:
        return None
    left, right = rng.choice(pairs)
    template = "Is the {0[0]} on the left of the {0[1]}?"
    return _ask(template, (left.kind, right.kind), (right.kind, left.kind))


def _color(scene: Scene, rng: random.Random) -> Pair | None:
    shape = scene.pick_by_kind(rng)
    if shape is None:
        return None
    return _ask(f"Is the {shape.kind} {{}}?", shape.color, _other(rng, COLORS, shape.color))


def _posters(scene: Scene, rng: random.Random) -> Pair | None:
    if not scene.word:
        return None
    return _ask("Is this poster titled '{}'?", scene.word, _other(rng, WORDS, scene.word))


def _celebrity(scene: Scene, rng: random.Random) -> Pair | None:
    shape = rng.choice(scene.shapes)
    return _ask(f"Is the shape in the {shape.position} corner a {{}}?", shape.kind, _other(rng, KINDS, shape.kind))


def _scene(scene: Scene, rng: random.Random) -> Pair | None:
    return _ask(
        "Is this picture drawn on a {} background?", scene.background, _other(rng, BACKGROUNDS, scene.background)
    )


def _landmark(scene: Scene, rng: random.Random) -> Pair | None:
    shape = scene.pick_by_color(rng)
    if shape is None:
        return None
    return _ask(f"Is the {shape.color} shape a {{}}?", shape.kind, _other(rng, KINDS, shape.kind))


def _artwork(scene: Scene, rng: random.Random) -> Pair | None:
    absent = [k for k in KINDS if not scene.has(kind=k)]
    if not absent:
        return None
    return _ask("Does this artwork contain a {}?", rng.choice(scene.kinds()), rng.choice(absent))


def _ocr(scene: Scene, rng: random.Random) -> Pair | None:
    if not scene.word:
        return None
    return _ask("Is the word in the image '{}'?", scene.word, _other(rng, WORDS, scene.word))


def _commonsense(scene: Scene, rng: random.Random) -> Pair | None:
    shape = scene.pick_by_kind(rng)
    if shape is None:
        return None
    return _ask(
        f"Is the {shape.kind} the same color as {{}}?",
        COLOR_THINGS[shape.color],
        COLOR_THINGS[_other(rng, COLORS, shape.color)],
    )


def _numerical(scene: Scene, rng: random.Random) -> Pair | None:
    first, second = rng.sample(KINDS, 2)
    total = scene.count(kind=first) + scene.count(kind=second)
    wrong = total + 1 if total == 0 else rng.choice([total - 1, total + 1])
    return _ask(f"Is the number of {first}s plus the number of {second}s equal to {{}}?", total, wrong)


def _translation(scene: Scene, rng: random.Random) -> Pair | None:
    if not scene.word:
        return None
    french = WORDS[scene.word]
    return _ask(
        "Is it appropriate to translate the word in the image into French '{}'?",
        french,
        _other(rng, WORDS.values(), french),
    )


def _code(scene: Scene, rng: random.Random) -> Pair | None:
    if not scene.word:
        return None
    n = len(scene.word)
    return _ask(
        "The word in the image is stored in w. Is the output of the python code print(len(w)) '{}'?",
        n,
        rng.choice([n - 1, n + 1]),
    )


QUESTION_WRITERS: dict[str, Callable[[Scene, random.Random], Pair | None]] = {
    "existence": _existence,
    "count": _count,
    "position": _position,
    "color": _color,
    "posters": _posters,
    "celebrity": _celebrity,
    "scene": _scene,
    "landmark": _landmark,
    "artwork": _artwork,
    "OCR": _ocr,
    "commonsense_reasoning": _commonsense,
    "numerical_calculation": _numerical,
    "text_translation": _translation,
    "code_reasoning": _code,
}


def plan(seed: int, per_subtask: int = IMAGES_PER_SUBTASK) -> list[DemoImage]:
    """The demo images of all 14 subtasks, in SUBTASKS order, without writing anything.

    Each image takes the next eval-split scene (from SCENE_INDEX_BASE on) its subtask can ask about.
    """
    images: list[DemoImage] = []
    index = SCENE_INDEX_BASE
    for subtask in SUBTASKS:
        for number in range(per_subtask):
            for _ in range(MAX_DRAWS):
                scene = make_scene(seed, "eval", index)
                pair = QUESTION_WRITERS[subtask](scene, random.Random(f"{seed}:mme:{subtask}:{index}"))
                index += 1
                if pair is not None:
                    break
            else:
                raise RuntimeError(f"no scene for MME subtask {subtask} in {MAX_DRAWS} draws")
            yes_suffix = ODD_SUFFIX if (subtask, number) == ODD_SPACED else SUFFIX
            stem = f"{number + 1:04d}"
            images.append(DemoImage(subtask, stem, index - 1, scene, pair[0] + yes_suffix, pair[1] + SUFFIX))
    return images


def write_demo(root: Path, seed: int) -> None:
    """Write the MME demo files under ``root/MME`` (release folders, eval_tool ground truth, LLaVA questions)."""
    base = Path(root) / "MME"
    results_dir = base / "eval_tool" / "Your_Results"
    results_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[str]] = {subtask: [] for subtask in SUBTASKS}
    llava_lines: list[dict[str, str]] = []
    for image in plan(seed):
        folder = base / RELEASE_DIR / image.subtask
        for rel in (image.image_rel, image.txt_rel):
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        picture = render(image.scene, IMAGE_SIZE)
        if image.name.endswith(".png"):
            picture.save(folder / image.image_rel)
        else:
            picture.save(folder / image.image_rel, quality=JPEG_QUALITY)
        qa = ((image.yes_question, "Yes"), (image.no_question, "No"))
        (folder / image.txt_rel).write_bytes("".join(f"{q}\t{a}\n" for q, a in qa).encode())
        results[image.subtask].extend(f"{image.name}\t{q}\t{a}\n" for q, a in qa)
        qid = f"{image.subtask}/{image.image_rel}"
        llava_lines.extend(question_line(qid, qid, llava_text(question), image.subtask) for question, _ in qa)
    for subtask, lines in results.items():
        (results_dir / f"{subtask}.txt").write_bytes("".join(lines).encode())
    write_jsonl(base / "llava_mme.jsonl", llava_lines)
