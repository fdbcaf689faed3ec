"""lmms-eval generate_until arguments -> our requests (the plugin's conversion, without lmms-eval)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from model_adapters.lmms_eval_requests import (
    DEFAULT_MAX_NEW_TOKENS,
    build_request,
    flatten_visuals,
    generation_settings,
    image_ref,
    prompt_with_images,
)


def test_placeholders_are_added_only_when_the_task_wrote_none() -> None:
    assert prompt_with_images("What is it?", 1) == "<image>\nWhat is it?"
    assert prompt_with_images("Compare.", 2) == "<image> <image>\nCompare."
    assert prompt_with_images("A <image> and <image>?", 2) == "A <image> and <image>?"
    assert prompt_with_images("Text only.", 0) == "Text only."


def test_generation_kwargs() -> None:
    greedy = generation_settings({"max_new_tokens": 16, "temperature": 0, "do_sample": False, "until": ["\n\n"]})
    assert (greedy.max_new_tokens, greedy.temperature, greedy.stop) == (16, 0.0, ("\n\n",))
    assert generation_settings({"until": "###"}).stop == ("###",)
    assert generation_settings({}).max_new_tokens == DEFAULT_MAX_NEW_TOKENS
    assert generation_settings({"temperature": 0.7}).temperature == 0.7
    assert generation_settings({"temperature": 0.7, "do_sample": False}).temperature == 0.0
    with pytest.raises(ValueError, match="num_beams=4"):
        generation_settings({"num_beams": 4})


def test_images_travel_losslessly() -> None:
    pixels = np.random.default_rng(0).integers(0, 256, size=(13, 21, 3), dtype=np.uint8)
    ref = image_ref(Image.fromarray(pixels))
    assert np.array_equal(np.asarray(ref.open()), pixels)
    with pytest.raises(ValueError, match="only images are supported, got a str"):
        image_ref("/videos/clip.mp4")


def test_build_request_and_visual_lists() -> None:
    image = Image.new("RGB", (8, 8), "red")
    assert flatten_visuals(None) == [] and flatten_visuals(image) == [image]
    assert flatten_visuals([[image], [image, image]]) == [image, image, image]
    request = build_request("gqa", 7, "Colour?", {"max_new_tokens": 4}, [image])
    assert (request.task, request.sample_id, request.prompt) == ("gqa", "7", "<image>\nColour?")
    assert len(request.images) == 1 and request.generation.max_new_tokens == 4
