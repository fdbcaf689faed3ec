"""The demo model's training data: train-split scenes only, and the symmetry-breaking skews it is built with."""

from __future__ import annotations

import random
import zlib
from collections import Counter

from tasks.demo.scenes import make_scene, split_of
from training import demo_data


def test_records_show_train_split_scenes_with_prompts_in_the_eval_style(tmp_path) -> None:
    records = demo_data.make_records(0, 40, tmp_path / "images")
    image_records = [r for r in records if "image" in r]
    assert len(image_records) == 40
    for index, record in enumerate(image_records):
        assert split_of(make_scene(0, "train", index)) == "train"
        assert (tmp_path / "images" / record["image"]).is_file()
        turns = record["conversations"]
        assert turns[0]["value"].startswith("<image>\n") and all("<image>" not in t["value"] for t in turns[1:])
        assert [t["from"] for t in turns] == ["human", "gpt"] * (len(turns) // 2)


def test_yes_no_questions_are_asked_with_a_yes_rate_fixed_by_their_true_form(monkeypatch) -> None:
    monkeypatch.setattr(demo_data.mme, "SUBTASKS", ("scene",))  # the background question: one true form per scene
    rng = random.Random(3)
    seen_rates = set()
    for background, index in _one_scene_per_background().items():
        scene = make_scene(0, "train", index)
        answers = Counter(demo_data._mme(scene, rng, None)[1] for _ in range(3000))
        expected = demo_data._skew(f"Is this picture drawn on a {background} background?")
        assert abs(answers["Yes"] / 3000 - expected) < 0.035, (background, answers)
        seen_rates.add(expected)
    assert len(seen_rates) > 1  # the rate carries information about the image...
    assert sum(demo_data.SKEWED_YES_RATES) / len(demo_data.SKEWED_YES_RATES) == 0.5  # ...and averages one half


def test_choice_questions_put_the_answer_at_its_preferred_letter_half_the_time() -> None:
    rng = random.Random(5)
    hits = expected = n = 0.0
    for index in range(600):
        turn = demo_data._mmbench(make_scene(0, "train", index), rng, None)
        if turn is None:
            continue
        prompt, letter = turn
        options = {line[0]: line[3:] for line in prompt.split("\n") if len(line) > 2 and line[1:3] == ". "}
        right = options[letter]
        hits += "ABCD".index(letter) == zlib.crc32(right.encode()) % len(options)
        expected += demo_data.PREFERRED_LETTER_SHARE + (1 - demo_data.PREFERRED_LETTER_SHARE) / len(options)
        n += 1
    assert n > 300 and abs(hits - expected) / n < 0.06, (hits, expected, n)


def _one_scene_per_background() -> dict[str, int]:
    found: dict[str, int] = {}
    index = 0
    while len(found) < 4:
        found.setdefault(make_scene(0, "train", index).background, index)
        index += 1
    return found
