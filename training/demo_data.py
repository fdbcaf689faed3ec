"""Synthetic instruction data for the demo model, from the demo question writers on TRAIN-split scenes.

Each record shows one ``make_scene(seed, "train", i)`` scene (rendered like the demo benchmarks, 96 px JPEG)
and asks one to three questions in the styles of the demo tasks, with their prompts as the ``llava15``
protocol writes them: GQA / VQA-v2 / TextVQA short answers (with the short-answer suffix, TextVQA with its
OCR-token line), MME yes/no, ScienceQA / MMBench option letters (options rotated as CircularEval does),
MM-Vet short answers and LLaVA-Bench descriptions. A few ScienceQA-style translation problems are
text-only. Train and eval scenes never share a layout (``tasks.demo.scenes``), so the demo benchmarks
measure what the model learned, not what it memorised.
"""

from __future__ import annotations

import dataclasses
import json
import random
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tasks.common.requests import LETTER_ANSWER, LLAVA_SUFFIX
from tasks.demo.scenes import Scene, make_scene, render
from tasks.gqa import demo as gqa
from tasks.llava_bench import demo as llava_bench
from tasks.mmbench import demo as mmbench
from tasks.mme import demo as mme
from tasks.mmvet import demo as mmvet
from tasks.scienceqa import demo as scienceqa
from tasks.textvqa import demo as textvqa
from tasks.vqav2 import demo as vqav2

IMAGE_SIZE = 96
JPEG_QUALITY = 95
# Symmetry breaking (see docs/training.md): in the train split, how often a yes/no question is asked in its
# "yes" form, and how often a choice question puts its answer at a preferred letter, depend on the true
# answer. A balanced yes/no question is an XOR of the question and the image: no single feature predicts it,
# so a model trained from scratch sits at chance for thousands of steps. A skew gives each feature a little
# predictive power, the model learns to gather both, and the comparison follows. Eval data stays balanced.
SKEWED_YES_RATES = (0.2, 0.4, 0.6, 0.8)
PREFERRED_LETTER_SHARE = 0.5
Turn = tuple[str, str]  # (question text without the image placeholder, answer)


def _gqa(scene: Scene, rng: random.Random, balance: gqa.Balance) -> Turn | None:
    questions = gqa.make_questions(scene, rng, 1, balance)
    return (questions[0].text + LLAVA_SUFFIX, questions[0].answer) if questions else None


def _mme(scene: Scene, rng: random.Random, balance: gqa.Balance) -> Turn | None:
    writer = mme.QUESTION_WRITERS[rng.choice(mme.SUBTASKS)]
    pair = writer(scene, rng)
    if pair is None:
        return None
    yes = rng.random() < _skew(pair[0])
    return mme.llava_text(pair[0 if yes else 1] + mme.SUFFIX), "Yes" if yes else "No"


def _vqav2(scene: Scene, rng: random.Random, balance: gqa.Balance) -> Turn | None:
    questions = vqav2.make_questions(scene, rng, 1)
    return (questions[0].text + LLAVA_SUFFIX, questions[0].answer) if questions else None


def _textvqa(scene: Scene, rng: random.Random, balance: gqa.Balance) -> Turn | None:
    if not scene.word:
        return None
    question = rng.choice(textvqa.TEMPLATES)(scene)
    roll = rng.random()
    tokens: tuple[str, ...] = () if roll < 0.1 else (scene.word.upper(),)
    if roll > 0.6:
        tokens += (rng.choice(textvqa.OCR_NOISE),)
    return textvqa.llava_text(question.question, tokens), question.answer


def _skew(text: str) -> float:
    """The yes-rate of a yes/no question whose true form is ``text`` (fixed per text)."""
    return SKEWED_YES_RATES[zlib.crc32(text.encode()) % len(SKEWED_YES_RATES)]


def _preferred_place(rng: random.Random, right: str, n_options: int) -> int | None:
    """Where a choice question's right option goes: its preferred letter half the time, else anywhere (None)."""
    return zlib.crc32(right.encode()) % n_options if rng.random() < PREFERRED_LETTER_SHARE else None


def _choice_prompt(text: str, options: tuple[str, ...]) -> str:
    return text + "".join(f"\n{'ABCDE'[i]}. {o}" for i, o in enumerate(options)) + f"\n{LETTER_ANSWER}"


def _scienceqa(scene: Scene, rng: random.Random, balance: gqa.Balance) -> Turn | None:
    problem = rng.choice(scienceqa.SCENE_WRITERS)(scene, rng)
    if problem is None:
        return None
    place = _preferred_place(rng, problem.choices[problem.answer], len(problem.choices))
    if place is not None:
        choices = list(problem.choices)
        choices[place], choices[problem.answer] = choices[problem.answer], choices[place]
        problem = dataclasses.replace(problem, choices=tuple(choices), answer=place)
    item = scienceqa.DemoProblem("0", "train", problem, 0, scene)
    text = scienceqa.llava_human_turn(item).replace("<image>", "").strip()
    return f"{text}\n{LETTER_ANSWER}", scienceqa.OPTIONS[problem.answer]


def _mmbench(scene: Scene, rng: random.Random, balance: gqa.Balance) -> Turn | None:
    question = rng.choice(mmbench.WRITERS)(scene, rng)
    if question is None:
        return None
    n = len(question.options)
    place = _preferred_place(rng, question.options[question.answer], n)
    options, answer = mmbench.rotated(question, rng.randrange(n) if place is None else (place - question.answer) % n)
    text = question.text if rng.random() >= mmbench.HINT_PROBABILITY else f"{mmbench.HINT}\n{question.text}"
    return _choice_prompt(text, options), mmbench.LETTERS[answer]


def _mmvet(scene: Scene, rng: random.Random, balance: gqa.Balance) -> Turn | None:
    item = mmvet.make_item(scene, rng, rng.randrange(len(mmvet.GENERATORS)))
    question, answer, _ = item
    answer = answer.split("<OR>")[0].replace("<AND>", " and ")
    return question, answer


def _llava_bench(scene: Scene, rng: random.Random, balance: gqa.Balance) -> Turn | None:
    _, make = rng.choice(llava_bench.CATEGORIES)
    return make(scene, rng)


# style -> (writer, weight): the scored short-answer and choice styles get most of the data.
STYLES: dict[str, tuple[Callable[[Scene, random.Random, gqa.Balance], Turn | None], float]] = {
    "gqa": (_gqa, 3.0),
    "mme": (_mme, 3.0),
    "vqav2": (_vqav2, 2.0),
    "textvqa": (_textvqa, 1.5),
    "scienceqa": (_scienceqa, 1.5),
    "mmbench": (_mmbench, 2.0),
    "mmvet": (_mmvet, 0.5),
    "llava_bench": (_llava_bench, 0.15),
}
TEXT_ONLY_SHARE = 0.03


def scene_turns(scene: Scene, rng: random.Random, count: int, balance: gqa.Balance) -> list[Turn]:
    """``count`` questions about one scene in weighted-random styles (styles that cannot ask are redrawn)."""
    names = list(STYLES)
    weights = [STYLES[n][1] for n in names]
    turns: list[Turn] = []
    for _ in range(20 * count):
        if len(turns) == count:
            break
        turn = STYLES[rng.choices(names, weights)[0]][0](scene, rng, balance)
        if turn is not None:
            turns.append(turn)
    return turns


def _conversation(turns: list[Turn], image: bool) -> list[dict[str, str]]:
    out = []
    for k, (question, answer) in enumerate(turns):
        prefix = "<image>\n" if image and k == 0 else ""
        out += [{"from": "human", "value": prefix + question}, {"from": "gpt", "value": answer}]
    return out


def make_records(
    seed: int, n_scenes: int, image_dir: Path, min_turns: int = 2, max_turns: int = 5
) -> list[dict[str, Any]]:
    """Records for ``n_scenes`` train scenes (images written to ``image_dir``) plus a few text-only ones.

    Several questions share one image (a multi-turn conversation), which spreads the cost of the image
    tokens and the system prompt over more trained answers."""
    image_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"demo-train:{seed}")
    balance = gqa.Balance()
    records: list[dict[str, Any]] = []
    for index in range(n_scenes):
        scene = make_scene(seed, "train", index)
        name = f"train{index}.jpg"
        render(scene, IMAGE_SIZE).save(image_dir / name, quality=JPEG_QUALITY)
        turns = scene_turns(scene, rng, rng.randint(min_turns, max_turns), balance)
        records.append({"id": f"train-{index}", "image": name, "conversations": _conversation(turns, True)})
        if rng.random() < TEXT_ONLY_SHARE:
            problem = scienceqa._translation(rng)
            item = scienceqa.DemoProblem("0", "train", problem, None, None)
            turn = (f"{scienceqa.llava_human_turn(item)}\n{LETTER_ANSWER}", scienceqa.OPTIONS[problem.answer])
            records.append({"id": f"text-{index}", "conversations": _conversation([turn], False)})
    return records


def write_dataset(folder: Path, seed: int, n_scenes: int) -> tuple[Path, Path]:
    """(JSON file, image folder) of the demo training data under ``folder``."""
    images = folder / "images"
    records = make_records(seed, n_scenes, images)
    path = folder / "demo_train.json"
    path.write_text(json.dumps(records), encoding="utf-8")
    return path, images


def corpus(records: list[dict[str, Any]]) -> list[str]:
    """The texts of the records (for the demo tokenizer)."""
    return [str(turn["value"]).replace("<image>\n", "") for r in records for turn in r["conversations"]]
