"""Every TinyLLaVA checkpoint format, loaded by the tinyllava adapter, computes what the original code does.

Each case fabricates a tiny look-alike (tests/helpers/tinyllava_lookalikes.py) and compares the adapter's Llava
model with a reference forward written from the original code's description: logits to float tolerance,
greedy answers token for token, prompt ids, image-token counts and preprocessing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from harness.types import GenerationSettings, ImageRef, Request
from model_adapters.tinyllava import TinyLlavaAdapter, cut_at_stops
from tests.helpers.module_fixtures import noise_images
from tests.helpers.tinyllava_lookalikes import (
    CASES,
    IMAGE_SIZE,
    IMAGE_TOKEN_INDEX,
    Lookalike,
    ids_with_image_marks,
    reference_greedy,
    reference_logits,
)

ATOL = 1e-5
IMAGE_SIZES = [(48, 20), (20, 48), (32, 32), (90, 30)]


@dataclass
class Case:
    name: str
    original: Lookalike
    args: dict[str, str]
    adapter: TinyLlavaAdapter
    template: str
    image_tokens: int


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[ImageRef]:
    return noise_images(tmp_path_factory.mktemp("images"), IMAGE_SIZES, seed=1)


@pytest.fixture(scope="module", params=list(CASES))
def case(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Case:
    fabricate, template, image_tokens = CASES[request.param]
    original, args = fabricate(tmp_path_factory.mktemp(request.param))
    adapter = TinyLlavaAdapter.from_spec(str(original.path), args, "cpu", 0)
    return Case(request.param, original, args, adapter, template, image_tokens)


def requests_for(images: list[ImageRef], max_new_tokens: int = 6) -> list[Request]:
    settings = GenerationSettings(max_new_tokens=max_new_tokens)
    return [
        Request("t", "a", "<image>\nWhat colour is the circle?", (images[0],), settings),
        Request(
            "t",
            "b",
            "<image>\nHow many stars are there? Answer the question using a single word or phrase.",
            (images[1],),
            settings,
        ),
        Request("t", "c", "Look: <image> and <image>. Same shape?", (images[2], images[3]), settings),
        Request("t", "d", "Is there a red square in the image? Please answer yes or no.", (), settings),
    ]


def prepared(case: Case, request: Request) -> tuple[list[int], torch.Tensor | None, list[int]]:
    """(our expanded ids, pixel rows, the reference's ids with -200 marks)."""
    item = case.adapter.preparer()(request)
    pixels = None if item["pixel_values"] is None else torch.from_numpy(item["pixel_values"])
    text = case.adapter.preparer().prompt_text(request)
    return item["input_ids"], pixels, ids_with_image_marks(text, case.original.tokenizer)


def our_logits(case: Case, ids: list[int], pixels: torch.Tensor | None) -> torch.Tensor:
    inputs: dict[str, Any] = {"input_ids": torch.tensor([ids])}
    if pixels is not None:
        inputs["pixel_values"] = pixels
    with torch.no_grad():
        return case.adapter.model(**inputs).logits[0]


# ---------------------------------------------------------------------------------------------


def test_logits_equal_the_original(case: Case, images: list[ImageRef]) -> None:
    live = case.original.live_vocab
    for request in requests_for(images):
        ids, pixels, marked = prepared(case, request)
        ours = our_logits(case, ids, pixels)
        reference = reference_logits(case.original, marked, pixels)
        assert ours.shape[0] == reference.shape[0]
        torch.testing.assert_close(ours[:, :live], reference, atol=ATOL, rtol=0)
        # rows the original does not have (the added <image> row, rows its loader cut off) never win
        assert bool((ours[:, live:] < -1e30).all())


def test_greedy_answers_equal_the_original(case: Case, images: list[ImageRef]) -> None:
    requests = requests_for(images)
    prepare = case.adapter.preparer()
    ours = [r.text for r in case.adapter.generate(requests, [prepare(r) for r in requests])]
    tokenizer, stop = case.original.tokenizer, case.adapter.settings.template.stop
    expected = []
    for request in requests:
        _, pixels, marked = prepared(case, request)
        tokens = reference_greedy(case.original, marked, pixels, request.generation.max_new_tokens)
        expected.append(cut_at_stops(tokenizer.decode(tokens, skip_special_tokens=True), (stop,)).strip())
    assert ours == expected
    assert sum(bool(text) for text in ours) >= 3


def test_prompt_ids_follow_tokenizer_image_token(case: Case, images: list[ImageRef]) -> None:
    image_id = case.adapter.preparer().image_token_id
    for request in requests_for(images):
        ids, _, marked = prepared(case, request)
        expanded = [t for m in marked for t in ([image_id] * case.image_tokens if m == IMAGE_TOKEN_INDEX else [m])]
        assert ids == expanded
        assert marked.count(IMAGE_TOKEN_INDEX) == len(request.images)


def test_feature_count_template_and_aspect(case: Case) -> None:
    # legacy SigLIP: 16 (the 729-token analogue); Factory SigLIP: 15 (728: token 0 dropped); CLIP: 16
    assert case.adapter.preparer().n_image_tokens == case.image_tokens
    assert case.adapter.info.template == case.template
    expected_aspect = "pad" if case.original.layout == "legacy" else "square"
    assert case.adapter.settings.image_aspect_ratio == expected_aspect


def reference_pixels(case: Case, image: Image.Image) -> np.ndarray:
    """Pad to a square with the mean colour (legacy ``pad``), then the tower family's published processor."""
    if case.original.layout == "legacy":
        side = max(image.size)
        mean = (127, 127, 127) if case.original.tower_kind == "siglip" else (122, 116, 104)
        canvas = Image.new("RGB", (side, side), mean)
        canvas.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
        image = canvas
    if case.original.tower_kind == "siglip":
        resized = np.asarray(image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC), dtype=np.float32)
        return ((resized / 255 - 0.5) / 0.5).transpose(2, 0, 1)
    from transformers import CLIPImageProcessorPil

    processor = CLIPImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    )
    return processor([image], return_tensors="np")["pixel_values"][0]


def test_image_preprocessing(case: Case, images: list[ImageRef]) -> None:
    prepare = case.adapter.preparer()
    for ref in images[:2]:  # a wide and a tall image
        image = ref.open()
        ours = prepare.pixel_values([image])[0]
        np.testing.assert_allclose(ours, reference_pixels(case, image), atol=1e-5)
