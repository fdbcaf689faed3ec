"""Each distinct image is prepared once per run: answers with image reuse equal answers without it."""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.adapter import ImageSharingPreparer
from harness.run.runner import IMAGE_CACHE_ENV, ImageCache, Runner, default_image_cache_bytes
from harness.types import GenerationSettings, ImageRef, Request, Response
from model_adapters.hf_vlm import HFVLMAdapter
from model_adapters.tinyllava import TinyLlavaAdapter
from tests.helpers.module_fixtures import noise_images
from tests.helpers.tiny_checkpoints import make_tiny_llava
from tests.helpers.tiny_vlms import make_tiny_llava_chat

SIZES = [(32, 32), (48, 20), (20, 48), (64, 40), (17, 33)]
QUESTIONS = ["What colour is it?", "Is there a square? Answer yes or no.", "How many stars?", "Where is it?"]


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[ImageRef]:
    folder = tmp_path_factory.mktemp("images")
    refs = noise_images(folder, SIZES, seed=3)
    broken = folder / "broken.png"
    broken.write_bytes(b"\x89PNG not an image")
    buffer = io.BytesIO()
    Image.fromarray(np.full((24, 36, 3), 200, dtype=np.uint8)).save(buffer, format="PNG")
    return [*refs, ImageRef(path=str(broken)), ImageRef(data=buffer.getvalue())]


@pytest.fixture(scope="module")
def adapter(tmp_path_factory: pytest.TempPathFactory) -> TinyLlavaAdapter:
    path = make_tiny_llava(tmp_path_factory.mktemp("siglip"), tower="siglip", template="v1")
    config = json.loads((path / "config.json").read_text())
    config["image_aspect_ratio"] = "pad"
    (path / "config.json").write_text(json.dumps(config))
    return TinyLlavaAdapter.from_spec(str(path), {}, "cpu", 0)


def shared_image_requests(images: list[ImageRef]) -> list[Request]:
    """Several questions per image (as in GQA and MME), two-image prompts, a text-only prompt, a broken image,
    an embedded image and a prompt whose placeholders do not match its images."""
    settings = GenerationSettings(max_new_tokens=8)
    requests = []
    for i in range(30):
        image = images[i % len(images)]
        question = QUESTIONS[i % len(QUESTIONS)] + " Please." * (i % 3)
        requests.append(Request("t", f"q{i}", f"<image>\n{question}", (image,), settings))
    requests.append(Request("t", "pair", "<image>\nSame as <image>?", (images[0], images[1]), settings))
    requests.append(Request("t", "pair2", "<image>\nSame as <image>?", (images[2], images[2]), settings))
    requests.append(Request("t", "text", "Just text.", (), settings))
    requests.append(Request("t", "slots", "No placeholder here.", (images[3],), settings))
    return requests


def run(adapter: object, requests: list[Request], batch_size: int, workers: int, cache: int | None) -> tuple:
    runner = Runner(adapter, None, batch_size=batch_size, num_workers=workers, show_progress=False,
                    image_cache_bytes=cache)  # fmt: skip
    responses, _ = runner.answer("t", requests)
    assert all(isinstance(r, Response) for r in responses)
    return [(r.text, r.error) for r in responses], runner.image_counts


def test_the_preparer_shares_per_image_work(adapter: TinyLlavaAdapter, images: list[ImageRef]) -> None:
    prep = adapter.preparer()
    assert isinstance(prep, ImageSharingPreparer)
    request = shared_image_requests(images)[30]  # two images
    whole = prep(request)
    np.testing.assert_array_equal(whole["pixel_values"], np.stack([prep.image(images[0]), prep.image(images[1])]))
    assert whole["pixel_values"].dtype == np.float32
    assert "pad=True" in prep.image_settings


@pytest.mark.parametrize("workers", [0, 2])
def test_answers_with_reuse_equal_answers_without(
    adapter: TinyLlavaAdapter, images: list[ImageRef], workers: int
) -> None:
    requests = shared_image_requests(images)
    without, counts_off = run(adapter, requests, 4, workers, cache=0)
    assert counts_off.prepared == 0  # reuse off: the old per-request path
    for batch_size in (1, 4) if workers == 0 else (4,):
        with_reuse, counts = run(adapter, requests, batch_size, workers, cache=None)
        assert with_reuse == without
        # each distinct image prepared once (the broken one too: it fails once, for all its requests)
        assert counts.prepared == len(images)
        image_uses = sum(len(r.images) for r in requests if r.prompt.count("<image>") == len(r.images))
        assert counts.prepared + counts.reused == image_uses
    errors = {r.sample_id: error for r, (_, error) in zip(requests, without) if error}
    assert set(errors) == {f"q{i}" for i in range(5, 30, 7)} | {"slots"}
    broken = Path(images[5].path).name
    assert all("UnidentifiedImageError" in e and broken in e for k, e in errors.items() if k != "slots")
    assert "placeholder" in errors["slots"]


def test_each_distinct_image_is_preprocessed_once(
    adapter: TinyLlavaAdapter, images: list[ImageRef], monkeypatch: pytest.MonkeyPatch
) -> None:
    prep = adapter.preparer()
    calls: Counter[str] = Counter()
    original = type(prep).image

    def counting(self: object, ref: ImageRef) -> np.ndarray:
        calls[ref.identity()] += 1
        return original(self, ref)

    monkeypatch.setattr(type(prep), "image", counting)
    requests = shared_image_requests(images)
    run(adapter, requests, 4, 0, cache=None)
    assert set(calls.values()) == {1} and len(calls) == len(images)
    calls.clear()
    run(adapter, requests, 4, 0, cache=0)
    assert sum(calls.values()) == sum(len(r.images) for r in requests if r.prompt.count("<image>") == len(r.images))


def test_a_small_cache_drops_images_and_keeps_answers(adapter: TinyLlavaAdapter, images: list[ImageRef]) -> None:
    requests = shared_image_requests(images)
    without, _ = run(adapter, requests, 4, 0, cache=0)
    one_image = adapter.preparer().image(images[0]).nbytes
    small, counts = run(adapter, requests, 4, 0, cache=one_image)
    assert small == without
    assert counts.prepared > len(images)


def test_hf_adapter_shares_decoded_images(tmp_path: Path, images: list[ImageRef]) -> None:
    hf = HFVLMAdapter.from_spec(str(make_tiny_llava_chat(tmp_path / "chat")), {}, "cpu", 0)
    requests = [r for r in shared_image_requests(images) if r.sample_id not in ("text", "slots")]
    without, _ = run(hf, requests, 4, 0, cache=0)
    with_reuse, counts = run(hf, requests, 4, 0, cache=None)
    assert with_reuse == without and counts.prepared == len(images)


def test_image_cache_is_bounded_lru(monkeypatch: pytest.MonkeyPatch) -> None:
    cache = ImageCache(max_bytes=300)
    for key in "abc":
        cache.put(key, np.zeros(100, dtype=np.uint8), None)
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("d", np.zeros(100, dtype=np.uint8), None)
    assert "b" not in cache and all(k in cache for k in "acd") and cache.bytes == 300
    cache.put("big", np.zeros(301, dtype=np.uint8), None)  # larger than the bound: not kept
    assert "big" not in cache
    cache.put("bad", None, "OSError: nope")
    assert cache.get("bad") == (None, "OSError: nope")
    monkeypatch.setenv(IMAGE_CACHE_ENV, "0")
    assert default_image_cache_bytes() == 0
    monkeypatch.setenv(IMAGE_CACHE_ENV, "2")
    assert default_image_cache_bytes() == 2 * 2**20
    monkeypatch.delenv(IMAGE_CACHE_ENV)
    assert default_image_cache_bytes() == 1024 * 2**20
