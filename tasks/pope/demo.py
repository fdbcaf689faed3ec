"""POPE demo data: synthetic scenes with "Is there a <thing> in the image?" questions in POPE's layout.

Writes under ``<root>/pope`` (LLaVA's ``playground/data/eval/pope`` layout): ``val2014/`` images named like
COCO's, ``coco/coco_pope_<split>.json`` label lines and ``llava_pope_test.jsonl``. Each image gets one
question answered yes (a shape it shows) and one answered no; the absent thing is any other shape for
``random``, a common shape kind in another colour for ``popular``, and a shape of a colour or kind present
in the scene for ``adversarial`` (POPE's three ways of picking absent objects, in miniature).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from harness.data.prepare import write_jsonl
from tasks.common.question_file import question_line
from tasks.common.requests import LLAVA_SUFFIX
from tasks.demo.scenes import COLORS, KINDS, Scene, make_scene, render
from tasks.pope.scorer import SPLITS

IMAGES_PER_SPLIT = 6
IMAGE_SIZE = 96
SCENE_INDEX_BASE = 3000  # eval-split scene indices used here start at this
QUESTION = "Is there a {} in the image?"


def _absent(scene: Scene, split: str, rng: random.Random) -> str:
    """A "<colour> <kind>" the scene does not show, picked the split's way."""
    options = [(c, k) for c in COLORS for k in KINDS if not scene.has(kind=k, color=c)]
    if split == "adversarial":
        near = [(c, k) for c, k in options if scene.has(color=c) or scene.has(kind=k)]
        options = near or options
    elif split == "popular":
        common = [(c, k) for c, k in options if k == KINDS[0]]
        options = common or options
    color, kind = rng.choice(options)
    return f"{color} {kind}"


def write_demo(root: Path, seed: int) -> None:
    """Write the POPE demo files under ``root/pope``."""
    base = Path(root) / "pope"
    (base / "val2014").mkdir(parents=True, exist_ok=True)
    questions: list[dict[str, Any]] = []
    index = SCENE_INDEX_BASE
    for split in SPLITS:
        labels: list[dict[str, Any]] = []
        for number in range(IMAGES_PER_SPLIT):
            scene = make_scene(seed, "eval", index)
            rng = random.Random(f"{seed}:pope:{split}:{index}")
            index += 1
            image = f"COCO_val2014_{index:012d}.jpg"
            render(scene, IMAGE_SIZE).save(base / "val2014" / image, quality=95)
            shown = rng.choice(scene.shapes)
            pair = [(f"{shown.color} {shown.kind}", "yes"), (_absent(scene, split, rng), "no")]
            if number % 2:
                pair.reverse()
            for thing, label in pair:
                text = QUESTION.format(thing)
                labels.append({"question_id": len(labels) + 1, "image": image, "text": text, "label": label})
                questions.append(question_line(len(questions) + 1, image, text + LLAVA_SUFFIX, split))
        write_jsonl(base / "coco" / f"coco_pope_{split}.json", labels)
    write_jsonl(base / "llava_pope_test.jsonl", questions)
