"""GQA demo data: synthetic scenes with GQA-style questions in the official testdev-balanced layout.

Writes under the data root (LLaVA's ``playground/data/eval`` layout):

- ``gqa/data/images/<imageId>.jpg``: image ``demo<i>`` shows ``make_scene(seed, "eval", i)``;
- ``gqa/data/testdev_balanced_questions.json``: the official questions-file schema, every field;
- ``gqa/llava_gqa_testdev_balanced.jsonl``: LLaVA's question file.

Questions mix the five structural types, yes/no answers are balanced, and each question carries a
small functional program (``semantic``) in GQA's notation, from which the scorer counts steps.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.data.prepare import write_jsonl
from tasks.common.question_file import question_line
from tasks.common.requests import LLAVA_SUFFIX
from tasks.demo.scenes import COLORS, KINDS, Scene, Shape, make_scene, render, with_article

N_IMAGES = 40
QUESTIONS_PER_IMAGE = 3
IMAGE_SIZE = 96
JPEG_QUALITY = 95
QUESTION_ID_BASE = 200_000_000  # question id = base + 10 * image index + question number
STRUCTURAL_ORDER = ("verify", "query", "choose", "logical", "compare")

Step = tuple[str, tuple[int, ...], str]  # (operation, dependencies, argument)


@dataclass(frozen=True)
class Question:
    """One generated question with its GQA annotations."""

    text: str
    answer: str
    full_answer: str
    structural: str
    semantic_type: str
    detailed: str
    program: tuple[Step, ...]
    group_global: str | None
    group_local: str


@dataclass
class Balance:
    """Running state across images: next structural type to ask, yes/no answers so far."""

    turn: int = 0
    yes: int = 0
    no: int = 0


@dataclass(frozen=True)
class DemoImage:
    """One demo image: its id, the scene index it shows and its (question id, question) pairs."""

    image_id: str
    index: int
    scene: Scene
    questions: list[tuple[str, Question]] = field(default_factory=list)


def _id(scene: Scene, shape: Shape | None) -> str:
    """GQA object id: the shape's index in the scene, "-" for an object that is not there."""
    return str(scene.shapes.index(shape)) if shape else "-"


def _ref(scene: Scene, kind: str, shape: Shape | None) -> str:
    """GQA object reference, "name (id)"."""
    return f"{kind} ({_id(scene, shape)})"


def _yes_no(yes: bool) -> str:
    return "yes" if yes else "no"


def _unique_pairs(scene: Scene) -> list[tuple[Shape, Shape]]:
    """Ordered pairs of distinct shapes whose kinds each occur once."""
    shapes = [s for s in scene.shapes if s.kind in scene.unique_kinds()]
    return [(a, b) for a in shapes for b in shapes if a is not b]


# ----------------------------------------------------------------------------------------------
# verify


def _exist_attr(scene: Scene, rng: random.Random, yes: bool) -> Question | None:
    if yes:
        shape = rng.choice(scene.shapes)
        kind, color = shape.kind, shape.color
    else:
        kind, color = rng.choice([(k, c) for k in KINDS for c in COLORS if not scene.has(k, c)])
    found = scene.select(kind, color)
    program = (
        ("select", (), _ref(scene, kind, found[0] if found else None)),
        ("filter color", (0,), color),
        ("exist", (1,), "?"),
    )
    thing = with_article(f"{color} {kind}")
    full = f"Yes, there is {thing}." if yes else f"No, there is no {color} {kind}."
    return Question(
        f"Is there {thing}?", _yes_no(yes), full, "verify", "attr", "existAttr", program, None, f"03-{kind}_{color}"
    )


def _verify_color(scene: Scene, rng: random.Random, yes: bool) -> Question | None:
    shape = scene.pick_by_kind(rng)
    if shape is None:
        return None
    color = shape.color if yes else rng.choice([c for c in COLORS if c != shape.color])
    program = (("select", (), _ref(scene, shape.kind, shape)), ("verify color", (0,), color))
    full = f"Yes, the {shape.kind} is {color}." if yes else f"No, the {shape.kind} is {shape.color}."
    return Question(
        f"Is the {shape.kind} {color}?",
        _yes_no(yes),
        full,
        "verify",
        "attr",
        "verifyAttr",
        program,
        None,
        f"06-{shape.kind}_{color}",
    )


def _verify_left(scene: Scene, rng: random.Random, yes: bool) -> Question | None:
    pairs = [(a, b) for a, b in _unique_pairs(scene) if scene.left_of(a, b)]
    if not pairs:
        return None
    left, right = rng.choice(pairs)
    subject, other = (left, right) if yes else (right, left)
    program = (
        ("select", (), _ref(scene, other.kind, other)),
        ("relate", (0,), f"{subject.kind},to the left of,s ({_id(scene, subject if yes else None)})"),
        ("exist", (1,), "?"),
    )
    side = "left" if yes else "right"
    full = f"{'Yes' if yes else 'No'}, the {subject.kind} is to the {side} of the {other.kind}."
    return Question(
        f"Is the {subject.kind} to the left of the {other.kind}?",
        _yes_no(yes),
        full,
        "verify",
        "rel",
        "relVerify",
        program,
        None,
        f"13-{other.kind}_{subject.kind}",
    )


# ----------------------------------------------------------------------------------------------
# query


def _query_color(scene: Scene, rng: random.Random, yes: bool) -> Question | None:
    shape = scene.pick_by_kind(rng)
    if shape is None:
        return None
    program = (("select", (), _ref(scene, shape.kind, shape)), ("query", (0,), "color"))
    return Question(
        f"What color is the {shape.kind}?",
        shape.color,
        f"The {shape.kind} is {shape.color}.",
        "query",
        "attr",
        "queryAttr",
        program,
        "color",
        f"10q-{shape.kind}_color",
    )


def _query_shape(scene: Scene, rng: random.Random, yes: bool) -> Question | None:
    shape = scene.pick_by_color(rng)
    if shape is None:
        return None
    program = (
        ("select", (), f"shape ({scene.shapes.index(shape)})"),
        ("filter color", (0,), shape.color),
        ("query", (1,), "name"),
    )
    return Question(
        f"Which shape is {shape.color}?",
        shape.kind,
        f"The {shape.color} shape is a {shape.kind}.",
        "query",
        "cat",
        "categoryAttr",
        program,
        "shape",
        f"11q-shape_{shape.color}",
    )


def _query_side(scene: Scene, rng: random.Random, yes: bool) -> Question | None:
    shape = scene.pick_by_kind(rng)
    if shape is None:
        return None
    program = (("select", (), _ref(scene, shape.kind, shape)), ("query", (0,), "hposition"))
    return Question(
        f"On which side is the {shape.kind}?",
        shape.side,
        f"The {shape.kind} is on the {shape.side} of the image.",
        "query",
        "attr",
        "positionQuery",
        program,
        "hposition",
        f"10q-{shape.kind}_hposition",
    )


def _query_word(scene: Scene, rng: random.Random, yes: bool) -> Question | None:
    if not scene.word:
        return None
    program = (("select", (), "scene"), ("query", (0,), "text"))
    return Question(
        "What word is written in the image?",
        scene.word,
        f"The word is {scene.word}.",
        "query",
        "global",
        "text",
        program,
        "text",
        "02q-text",
    )


# ----------------------------------------------------------------------------------------------
# choose


def _choose_color(scene: Scene, rng: random.Random, yes: bool) -> Question | None:
    shape = scene.pick_by_kind(rng)
    if shape is None:
        return None
    options = [shape.color, rng.choice([c for c in COLORS if c != shape.color])]
    rng.shuffle(options)
    program = (("select", (), _ref(scene, shape.kind, shape)), ("choose color", (0,), "|".join(options)))
    return Question(
        f"Is the {shape.kind} {options[0]} or {options[1]}?",
        shape.color,
        f"The {shape.kind} is {shape.color}.",
        "choose",
        "attr",
        "chooseAttr",
        program,
        "color",
        f"10c-{shape.kind}_color",
    )


def _choose_side(scene: Scene, rng: random.Random, yes: bool) -> Question | None:
    shape = scene.pick_by_kind(rng)
    if shape is None:
        return None
    program = (("select", (), _ref(scene, shape.kind, shape)), ("choose hposition", (0,), "left|right"))
    return Question(
        f"Is the {shape.kind} on the left or on the right?",
        shape.side,
        f"The {shape.kind} is on the {shape.side} of the image.",
        "choose",
        "attr",
        "positionChoose",
        program,
        "hposition",
        f"10c-{shape.kind}_hposition",
    )


# ----------------------------------------------------------------------------------------------
# logical


def _two_exist(scene: Scene, first: str, second: str, combine: str) -> tuple[Step, ...]:
    refs = [_ref(scene, k, scene.select(kind=k)[0] if scene.has(kind=k) else None) for k in (first, second)]
    return (
        ("select", (), refs[0]),
        ("exist", (0,), "?"),
        ("select", (), refs[1]),
        ("exist", (2,), "?"),
        (combine, (1, 3), ""),
    )


def _exist_and(scene: Scene, rng: random.Random, yes: bool) -> Question | None:
    present = scene.kinds()
    absent = [k for k in KINDS if k not in present]
    if len(present) < 2 if yes else not absent:
        return None
    if yes:
        pair = rng.sample(present, 2)
        full = f"Yes, there are both a {pair[0]} and a {pair[1]}."
    else:
        missing = rng.choice(absent)
        other = rng.choice([k for k in KINDS if k != missing])
        pair = rng.sample([missing, other], 2)
        full = (
            f"No, there is a {other} but no {missing}."
            if scene.has(kind=other)
            else f"No, there is no {pair[0]} and no {pair[1]}."
        )
    return Question(
        f"Is there both a {pair[0]} and a {pair[1]}?",
        _yes_no(yes),
        full,
        "logical",
        "obj",
        "existAnd",
        _two_exist(scene, pair[0], pair[1], "and"),
        None,
        f"12-{pair[0]}_{pair[1]}",
    )


def _exist_or(scene: Scene, rng: random.Random, yes: bool) -> Question | None:
    present = scene.kinds()
    absent = [k for k in KINDS if k not in present]
    if not yes and len(absent) < 2:
        return None
    if yes:
        seen = rng.choice(present)
        pair = [seen, rng.choice([k for k in KINDS if k != seen])]
        rng.shuffle(pair)
        full = f"Yes, there is a {seen}."
    else:
        pair = rng.sample(absent, 2)
        full = f"No, there are no {pair[0]}s or {pair[1]}s."
    return Question(
        f"Is there a {pair[0]} or a {pair[1]}?",
        _yes_no(yes),
        full,
        "logical",
        "obj",
        "existOr",
        _two_exist(scene, pair[0], pair[1], "or"),
        None,
        f"12-{pair[0]}_{pair[1]}",
    )


# ----------------------------------------------------------------------------------------------
# compare


def _color_pair(scene: Scene, rng: random.Random, same: bool) -> tuple[Shape, Shape] | None:
    pairs = [(a, b) for a, b in _unique_pairs(scene) if (a.color == b.color) == same]
    return rng.choice(pairs) if pairs else None


def _compare_full(a: Shape, b: Shape, answer: str) -> str:
    if a.color == b.color:
        return f"{answer.capitalize()}, both the {a.kind} and the {b.kind} are {a.color}."
    return f"{answer.capitalize()}, the {a.kind} is {a.color} and the {b.kind} is {b.color}."


def _same_color(scene: Scene, rng: random.Random, yes: bool) -> Question | None:
    pair = _color_pair(scene, rng, same=yes)
    if pair is None:
        return None
    a, b = pair
    program = (
        ("select", (), _ref(scene, a.kind, a)),
        ("select", (), _ref(scene, b.kind, b)),
        ("same color", (0, 1), ""),
    )
    return Question(
        f"Are the {a.kind} and the {b.kind} the same color?",
        _yes_no(yes),
        _compare_full(a, b, _yes_no(yes)),
        "compare",
        "attr",
        "sameColor",
        program,
        None,
        f"14-{a.kind}_{b.kind}_color",
    )


def _different_color(scene: Scene, rng: random.Random, yes: bool) -> Question | None:
    pair = _color_pair(scene, rng, same=not yes)
    if pair is None:
        return None
    a, b = pair
    program = (
        ("select", (), _ref(scene, a.kind, a)),
        ("select", (), _ref(scene, b.kind, b)),
        ("different color", (0, 1), ""),
    )
    return Question(
        f"Do the {a.kind} and the {b.kind} have different colors?",
        _yes_no(yes),
        _compare_full(a, b, _yes_no(yes)),
        "compare",
        "attr",
        "diffColor",
        program,
        None,
        f"14-{a.kind}_{b.kind}_color",
    )


Template = Callable[[Scene, random.Random, bool], "Question | None"]
TEMPLATES: dict[str, tuple[Template, ...]] = {
    "verify": (_exist_attr, _verify_color, _verify_left),
    "query": (_query_color, _query_shape, _query_side, _query_word),
    "choose": (_choose_color, _choose_side),
    "logical": (_exist_and, _exist_or),
    "compare": (_same_color, _different_color),
}


def make_questions(scene: Scene, rng: random.Random, count: int, balance: Balance | None = None) -> list[Question]:
    """Up to ``count`` questions about one scene, cycling through the structural types.

    ``balance`` carries the structural turn and the yes/no tally across images, so a sequence of
    scenes gets a balanced mix; a yes/no question is asked with whichever answer is behind.
    """
    balance = balance if balance is not None else Balance()
    chosen: list[Question] = []
    used: set[Template] = set()
    for _ in range(2 * len(STRUCTURAL_ORDER)):
        if len(chosen) == count:
            break
        templates = [t for t in TEMPLATES[STRUCTURAL_ORDER[balance.turn % len(STRUCTURAL_ORDER)]] if t not in used]
        balance.turn += 1
        rng.shuffle(templates)
        want_yes = balance.yes <= balance.no
        for template in templates:
            question = template(scene, rng, want_yes)
            if question is not None:
                used.add(template)
                chosen.append(question)
                balance.yes += question.answer == "yes"
                balance.no += question.answer == "no"
                break
    return chosen


def plan(seed: int, n_images: int = N_IMAGES, per_image: int = QUESTIONS_PER_IMAGE) -> list[DemoImage]:
    """The demo images and their questions, without writing anything."""
    balance = Balance()
    images: list[DemoImage] = []
    for index in range(n_images):
        scene = make_scene(seed, "eval", index)
        rng = random.Random(f"{seed}:gqa:{index}")
        questions = make_questions(scene, rng, per_image, balance)
        ids = [str(QUESTION_ID_BASE + 10 * index + j) for j in range(len(questions))]
        images.append(DemoImage(f"demo{index}", index, scene, list(zip(ids, questions))))
    return images


def semantic_str(program: Sequence[Step]) -> str:
    """GQA's one-line program text: "op: arg [deps]" steps joined by "->"."""
    parts = []
    for op, deps, arg in program:
        parts.append(f"{op}: {arg}" + (f" [{', '.join(map(str, deps))}]" if deps else ""))
    return "->".join(parts)


def question_record(question: Question, image_id: str, question_id: str) -> dict[str, Any]:
    """The official questions-file value for one question (every field of the release)."""
    steps = [{"operation": op, "dependencies": list(deps), "argument": arg} for op, deps, arg in question.program]
    return {
        "semantic": steps,
        "entailed": [],
        "equivalent": [question_id],
        "question": question.text,
        "imageId": image_id,
        "isBalanced": True,
        "groups": {"global": question.group_global, "local": question.group_local},
        "answer": question.answer,
        "semanticStr": semantic_str(question.program),
        "annotations": {"answer": {}, "question": {}, "fullAnswer": {}},
        "types": {"detailed": question.detailed, "semantic": question.semantic_type, "structural": question.structural},
        "fullAnswer": question.full_answer,
    }


def write_demo(root: Path, seed: int) -> None:
    """Write the GQA demo files under ``root`` (images, official questions file, LLaVA question file)."""
    base = Path(root) / "gqa"
    image_dir = base / "data" / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    records: dict[str, dict[str, Any]] = {}
    lines: list[dict[str, Any]] = []
    for image in plan(seed):
        render(image.scene, IMAGE_SIZE).save(image_dir / f"{image.image_id}.jpg", quality=JPEG_QUALITY)
        for qid, question in image.questions:
            records[qid] = question_record(question, image.image_id, qid)
            lines.append(question_line(qid, f"{image.image_id}.jpg", question.text + LLAVA_SUFFIX))
    (base / "data" / "testdev_balanced_questions.json").write_bytes(json.dumps(records).encode())
    write_jsonl(base / "llava_gqa_testdev_balanced.jsonl", lines)
