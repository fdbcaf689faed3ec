"""The tinyllava adapter on real tiny HF Llava checkpoints (no mocks)."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

from harness.errors import HarnessError, UsageError
from harness.types import GenerationSettings, ImageRef, Request
from model_adapters.demo_model import (
    build_demo_checkpoint,
    demo_prompts,
    ensure_random_demo_checkpoint,
    trained_demo_checkpoint,
)
from model_adapters.fingerprint import fingerprint
from model_adapters.tinyllava import TinyLlavaAdapter
from tests.helpers.module_fixtures import noise_images
from tests.helpers.tiny_checkpoints import make_tiny_llava

IMAGE_SIZES = [(32, 32), (48, 20), (20, 48), (64, 40), (17, 33), (40, 64), (90, 30), (25, 25)]
QUESTIONS = [
    "What colour is the circle?",
    "Is there a red square in the image? Please answer yes or no.",
    "How many stars are there? Answer the question using a single word or phrase.",
    "Where is the triangle?",
    "Describe the picture.",
    "Is the blue diamond on the left or on the right of the green heart? Answer the question using a "
    "single word or phrase.",
    "Count.",
    "What shape is yellow, and what shape is orange, and where are they? Answer in detail.",
]


# ---------------------------------------------------------------------------------------------
# Fixtures: checkpoints, images and adapters are built once per module; caches live in tmp.


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[ImageRef]:
    return noise_images(tmp_path_factory.mktemp("images"), IMAGE_SIZES, seed=0)


@pytest.fixture(scope="module")
def clip_old(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_llava(tmp_path_factory.mktemp("clip-old"), tower="clip", old_processor_config=True)


@pytest.fixture(scope="module")
def siglip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = make_tiny_llava(tmp_path_factory.mktemp("siglip"), tower="siglip", template="v1")
    config = json.loads((path / "config.json").read_text())
    config["image_aspect_ratio"] = "pad"
    (path / "config.json").write_text(json.dumps(config))
    return path


@pytest.fixture(scope="module")
def clip_adapter(clip_old: Path) -> TinyLlavaAdapter:
    return TinyLlavaAdapter.from_spec(str(clip_old), {}, "cpu", 0)


@pytest.fixture(scope="module")
def siglip_adapter(siglip_dir: Path) -> TinyLlavaAdapter:
    return TinyLlavaAdapter.from_spec(str(siglip_dir), {}, "cpu", 0)


def mixed_requests(images: list[ImageRef], n: int = 16, max_new_tokens: int = 12) -> list[Request]:
    """Prompts of different lengths, with one, two or no images."""
    requests = []
    for i in range(n):
        question = QUESTIONS[i % len(QUESTIONS)] + " Please." * (i % 5)
        settings = GenerationSettings(max_new_tokens=max_new_tokens)
        if i % 7 == 3:
            pair = (images[i % 8], images[(i + 3) % 8])
            requests.append(Request("t", str(i), f"<image>\n{question} Compare with <image>", pair, settings))
        elif i % 7 == 5:
            requests.append(Request("t", str(i), question, (), settings))
        else:
            requests.append(Request("t", str(i), f"<image>\n{question}", (images[i % 8],), settings))
    return requests


def answer(adapter: TinyLlavaAdapter, requests: list[Request]) -> list[str]:
    prepare = adapter.preparer()
    responses = adapter.generate(requests, [prepare(r) for r in requests])
    assert all(r.error is None for r in responses), [r.error for r in responses]
    return [r.text for r in responses]


# ---------------------------------------------------------------------------------------------
# Prompt tokenisation


def reference_tokenizer_image_token(prompt: str, tokenizer, image_id: int, n_tokens: int) -> list[int]:
    """LLaVA's tokenizer_image_token as described: chunks around <image>, BOS kept once, -200 between
    the chunks; then each -200 expanded to the image token repeated once per image feature."""
    chunks = [tokenizer(part).input_ids for part in prompt.split("<image>")]
    starts_with_bos = len(chunks[0]) > 0 and chunks[0][0] == tokenizer.bos_token_id
    marked: list[int] = []
    for index, chunk in enumerate(chunks):
        if index == 0:
            marked += chunk
        else:
            marked.append(-200)
            marked += chunk[1:] if starts_with_bos else chunk
    expanded: list[int] = []
    for token in marked:
        expanded += [image_id] * n_tokens if token == -200 else [token]
    return expanded


@pytest.mark.parametrize(
    "request_",
    [
        Request("t", "a", "<image>\nWhat colour is the star?", (ImageRef("x"),)),
        Request("t", "b", "Look: <image> and <image>. Same?", (ImageRef("x"), ImageRef("y"))),
        Request("t", "c", "No image here.", ()),
        Request("t", "d", "<image>", (ImageRef("x"),), system="Short answers."),
        Request("t", "e", "raw <image> prompt<image>", (ImageRef("x"), ImageRef("y")), raw=True),
    ],
)
def test_prompt_tokens_match_reference(clip_adapter: TinyLlavaAdapter, request_: Request) -> None:
    prep = clip_adapter.preparer()
    tokenizer = clip_adapter.tokenizer
    text = request_.prompt if request_.raw else prep.template.render(request_.prompt, request_.system)
    image_id = prep.image_token_id
    expected = reference_tokenizer_image_token(text, tokenizer, image_id, 16)
    ids = prep.input_ids(request_)
    assert ids == expected
    assert ids.count(tokenizer.bos_token_id) == 1 and ids[0] == tokenizer.bos_token_id
    assert ids.count(image_id) == 16 * len(request_.images)
    if not request_.raw:
        assert tokenizer.decode(ids, skip_special_tokens=True).startswith(request_.system or "A chat between")


def test_image_tokens_counted_per_strategy(clip_adapter: TinyLlavaAdapter, siglip_adapter) -> None:
    # 32-pixel images, patch 8: CLIP "default" drops the CLS token (17 -> 16), SigLIP "full" keeps all 16
    assert clip_adapter.preparer().n_image_tokens == 16
    assert siglip_adapter.preparer().n_image_tokens == 16


# ---------------------------------------------------------------------------------------------
# Loading and settings


def test_old_processor_config_checkpoint_loads_and_generates(clip_adapter, clip_old: Path, images) -> None:
    assert not (clip_old / "processor_config.json").exists()
    info = clip_adapter.info
    assert (info.name, info.llm, info.template) == (clip_old.name, "llama", "phi")
    assert info.vision_tower == "clip_vision_model"
    assert (info.dtype, info.device, info.is_demo) == ("float32", "cpu", False)
    assert info.n_parameters and info.n_parameters > 100_000
    assert info.fingerprint == clip_adapter.fingerprint and len(info.fingerprint) == 64
    assert clip_adapter.settings.image_aspect_ratio == "square"  # no config field: no padding
    settings = GenerationSettings(max_new_tokens=8)
    request = Request("t", "0", "<image>\nWhat colour is the circle?", (images[1],), settings)
    prepared = clip_adapter.preparer()(request)
    response = clip_adapter.generate([request], [prepared])[0]
    assert response.error is None
    assert response.prompt_tokens == len(prepared["input_ids"])
    # the tiny random-weight model never emits its stop token in 8 steps: the budget decides the length
    assert response.output_tokens == 8 and response.text
    short = Request("t", "0", request.prompt, request.images, GenerationSettings(max_new_tokens=3))
    assert clip_adapter.generate([short], [clip_adapter.preparer()(short)])[0].output_tokens == 3


def test_settings_come_from_args_and_config(siglip_adapter, siglip_dir: Path) -> None:
    settings = siglip_adapter.settings
    assert (settings.template.name, settings.image_aspect_ratio, settings.attn) == ("v1", "pad", "sdpa")
    adapter = TinyLlavaAdapter.from_spec(str(siglip_dir), {"conv": "qwen2", "image_aspect_ratio": "square"}, "cpu", 0)
    assert (adapter.info.template, adapter.settings.image_aspect_ratio) == ("qwen2", "square")
    assert not adapter.preparer().pad_to_square


@pytest.mark.parametrize("origin,cuda_dtype", [
    ("hf_llava", "bfloat16"), ("legacy", "float16"), ("projector-only", "float16"), ("lora", "float16"),
    ("factory", "float32"),
])  # fmt: skip
def test_the_default_dtype_on_cuda_is_the_original_evaluations(siglip_dir: Path, origin: str, cuda_dtype: str) -> None:
    """On CUDA a checkpoint runs in the dtype its original evaluation loaded it in (TinyLLaVABench float16, TinyLLaVA
    Factory float32, its LoRA float16), also when ``convert`` wrote it as HF Llava; on CPU in float32; an explicit
    ``dtype`` wins. (Settings only: no GPU is needed to choose them.)"""
    from model_adapters.formats.runtime import SOURCE_FORMAT_KEY, origin_format
    from model_adapters.tinyllava import parse_settings

    config = json.loads((siglip_dir / "config.json").read_text())
    written = {**config, SOURCE_FORMAT_KEY: origin}  # what convert records in the folder it writes
    for fmt, cfg in (("hf_llava", written), (origin, config)):
        found = origin_format(fmt, cfg)
        assert found == origin
        assert parse_settings({}, cfg, siglip_dir, "cuda", found).dtype == cuda_dtype
        assert parse_settings({}, cfg, siglip_dir, "cuda:1", found).dtype == cuda_dtype
        assert parse_settings({}, cfg, siglip_dir, "cpu", found).dtype == "float32"
        assert parse_settings({"dtype": "bfloat16"}, cfg, siglip_dir, "cuda", found).dtype == "bfloat16"


def test_pad_to_square_uses_the_mean_colour(siglip_adapter, images) -> None:
    prep = siglip_adapter.preparer()
    wide = images[6].open()  # 90 x 30
    padded = prep.pixel_values([wide])[0]
    # SigLIP mean 0.5 -> background 127 -> normalised (127/255 - 0.5) / 0.5
    assert padded.shape == (3, 32, 32)
    assert np.allclose(padded[:, 0, :], (127 / 255 - 0.5) / 0.5, atol=1e-5)


def test_unknown_model_arg_is_a_usage_error(clip_old: Path) -> None:
    with pytest.raises(UsageError) as err:
        TinyLlavaAdapter.from_spec(str(clip_old), {"temperature": "0"}, "cpu", 0)
    assert "temperature" in str(err.value)
    for key in ("conv", "dtype", "image_aspect_ratio", "attn"):
        assert key in str(err.value)
    with pytest.raises(UsageError, match="float32"):
        TinyLlavaAdapter.from_spec(str(clip_old), {"dtype": "int8"}, "cpu", 0)
    with pytest.raises(UsageError, match="phi, v1, llama, gemma, qwen2"):
        TinyLlavaAdapter.from_spec(str(clip_old), {"conv": "vicuna"}, "cpu", 0)


def test_missing_template_names_the_choices(tmp_path: Path) -> None:
    path = make_tiny_llava(tmp_path / "ckpt", tower="siglip", template=None)
    with pytest.raises(HarnessError) as err:
        TinyLlavaAdapter.from_spec(str(path), {}, "cpu", 0)
    message = str(err.value)
    assert "declares no chat template" in message and "conv=NAME" in message
    assert "phi, v1, llama, gemma, qwen2" in message
    assert TinyLlavaAdapter.from_spec(str(path), {"conv": "llama"}, "cpu", 0).info.template == "llama"
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "conv_version": "gemma"}))
    assert TinyLlavaAdapter.from_spec(str(path), {}, "cpu", 0).info.template == "gemma"


@pytest.mark.parametrize("model_type", ["tiny_llava_phi", "tiny_llava", "tiny_llava_stablelm", "tinyllava"])
def test_other_tinyllava_formats_are_loaded_not_refused(tmp_path: Path, model_type: str) -> None:
    # legacy and Factory checkpoints load (tests/model_adapters/test_formats.py); a config alone is missing its weights
    (tmp_path / "config.json").write_text(json.dumps({"model_type": model_type, "conv_mode": "phi"}))
    with pytest.raises(HarnessError) as err:
        TinyLlavaAdapter.from_spec(str(tmp_path), {}, "cpu", 0)
    assert "has no model weights" in str(err.value)


def test_target_that_is_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="not a checkpoint directory"):
        TinyLlavaAdapter.from_spec(str(tmp_path / "nope"), {}, "cpu", 0)
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(HarnessError, match="not a checkpoint directory"):
        TinyLlavaAdapter.from_spec(str(tmp_path / "file.txt"), {}, "cpu", 0)
    # looks like a hub id: tried on the hub (or the offline cache), then reported the same way
    with pytest.raises(HarnessError, match="not a checkpoint directory: nobody-x7/no-such-model-x7"):
        TinyLlavaAdapter.from_spec("nobody-x7/no-such-model-x7", {}, "cpu", 0)


# ---------------------------------------------------------------------------------------------
# Generation


@pytest.mark.parametrize("which", ["clip_adapter", "siglip_adapter"])
def test_batch_of_one_and_of_eight_give_identical_text(which: str, request, images) -> None:
    adapter = request.getfixturevalue(which)
    requests = mixed_requests(images, n=16)
    single = [answer(adapter, [r])[0] for r in requests]
    batched = answer(adapter, requests[:8]) + answer(adapter, requests[8:])
    assert batched == single
    assert sum(bool(text) for text in single) >= 12  # real answers, not all empty
    assert len(set(single)) >= 4  # they depend on the prompt and the image


def test_per_request_token_limits_in_one_batch(clip_adapter, images) -> None:
    base = mixed_requests(images, n=2, max_new_tokens=12)
    short = Request("t", "s", base[0].prompt, base[0].images, GenerationSettings(max_new_tokens=3))
    prepare = clip_adapter.preparer()
    together = clip_adapter.generate([short, base[1]], [prepare(short), prepare(base[1])])
    alone = clip_adapter.generate([short], [prepare(short)])
    assert together[0].text == alone[0].text
    assert together[0].output_tokens == alone[0].output_tokens <= 3


def test_stop_string_cuts_the_answer(clip_adapter, images) -> None:
    requests = mixed_requests(images, n=16, max_new_tokens=16)
    texts = answer(clip_adapter, requests)
    index, full = max(enumerate(texts), key=lambda pair: len(pair[1]))
    assert len(full) >= 6
    stop = full[len(full) // 2 : len(full) // 2 + 2]
    original = requests[index]
    stopped = Request("t", "s", original.prompt, original.images, GenerationSettings(max_new_tokens=16, stop=(stop,)))
    assert answer(clip_adapter, [stopped]) == [full[: full.index(stop)].strip()]


def test_a_malformed_item_fails_alone(clip_adapter, images) -> None:
    requests = mixed_requests(images, n=3)
    prepared = [clip_adapter.preparer()(r) for r in requests]
    broken = [prepared[0], {**prepared[1], "pixel_values": None}, prepared[2]]  # image tokens, no pixels
    responses = clip_adapter.generate(requests, broken)
    assert [r.error is None for r in responses] == [True, False, True]
    assert "image tokens" in str(responses[1].error)
    assert [responses[0].text, responses[2].text] == answer(clip_adapter, [requests[0], requests[2]])


def test_sampling_is_seeded(clip_adapter, images) -> None:
    request = mixed_requests(images, n=1)[0]
    hot = Request("t", "h", request.prompt, request.images, GenerationSettings(max_new_tokens=8, temperature=1.0))
    assert answer(clip_adapter, [hot]) == answer(clip_adapter, [hot])


def test_sort_key_grows_with_prompt_and_images(clip_adapter, images) -> None:
    short = Request("t", "a", "Hi")
    longer = Request("t", "b", "Hi there, how many?")
    with_image = Request("t", "c", "<image>\nHi", (images[0],))
    assert clip_adapter.sort_key(short) < clip_adapter.sort_key(longer) < clip_adapter.sort_key(with_image)


# ---------------------------------------------------------------------------------------------
# The preparer (runs in DataLoader workers)


def test_preparer_pickles_and_raises_on_bad_images(clip_adapter, images, tmp_path: Path) -> None:
    prep = clip_adapter.preparer()
    copy = pickle.loads(pickle.dumps(prep))
    request = mixed_requests(images, n=1)[0]
    first, second = prep(request), copy(request)
    assert first["input_ids"] == second["input_ids"]
    assert np.array_equal(first["pixel_values"], second["pixel_values"])
    assert first["pixel_values"].shape == (1, 3, 32, 32) and first["pixel_values"].dtype == np.float32
    assert prep(Request("t", "n", "no image"))["pixel_values"] is None

    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"this is not an image")
    with pytest.raises((OSError, ValueError)):
        prep(Request("t", "x", "<image>\nQ?", (ImageRef(path=str(corrupt)),)))
    with pytest.raises(ValueError, match="placeholder"):
        prep(Request("t", "y", "Q?", (images[0],)))


# ---------------------------------------------------------------------------------------------
# Fingerprints


def test_fingerprint_tracks_content_and_settings(clip_adapter, clip_old: Path, tmp_path: Path, cache_env: Path) -> None:
    again = TinyLlavaAdapter.from_spec(str(clip_old), {}, "cpu", 0)
    assert again.fingerprint == clip_adapter.fingerprint
    assert (cache_env / "file-hashes.json").is_file()
    other_conv = TinyLlavaAdapter.from_spec(str(clip_old), {"conv": "v1"}, "cpu", 0)
    other_dtype = TinyLlavaAdapter.from_spec(str(clip_old), {"dtype": "bfloat16"}, "cpu", 0)
    assert len({clip_adapter.fingerprint, other_conv.fingerprint, other_dtype.fingerprint}) == 3

    copy = Path(shutil.copytree(clip_old, tmp_path / "copy"))
    settings = clip_adapter.fingerprint_settings()
    assert fingerprint(copy, settings) == clip_adapter.fingerprint  # content, not location
    weights = load_file(copy / "model.safetensors")
    weights["multi_modal_projector.linear_1.bias"][0] += 1.0
    save_file(weights, copy / "model.safetensors", metadata={"format": "pt"})
    assert fingerprint(copy, settings) != clip_adapter.fingerprint


# ---------------------------------------------------------------------------------------------
# The demo model


def test_random_demo_stand_in_is_deterministic_and_loads(tmp_path: Path, images) -> None:
    first = build_demo_checkpoint(tmp_path / "a")
    second = build_demo_checkpoint(tmp_path / "b")
    assert fingerprint(first, {}) == fingerprint(second, {})

    stand_in = ensure_random_demo_checkpoint()
    assert stand_in == ensure_random_demo_checkpoint()  # built once, then reused
    adapter = TinyLlavaAdapter.from_spec(str(stand_in), {}, "cpu", 0)
    assert adapter.fingerprint == TinyLlavaAdapter.from_spec(str(first), {}, "cpu", 0).fingerprint
    requests = [
        Request("t", str(i), f"<image>\n{q}", (images[i % 8],), GenerationSettings(max_new_tokens=16))
        for i, q in enumerate(demo_prompts(16))
    ]
    single = [answer(adapter, [r])[0] for r in requests]
    assert answer(adapter, requests) == single
    assert all(text and len(text.split()) <= 3 for text in single)  # short demo-word answers


def test_demo_spec_runs_the_packaged_trained_model(images) -> None:
    trained = trained_demo_checkpoint()
    if trained is None:
        pytest.skip("no packaged demo checkpoint (python -m training demo builds it)")
    demo = TinyLlavaAdapter.from_spec("demo", {}, "cpu", 0)
    assert demo.info.is_demo and demo.info.name == "demo" and demo.path == trained
    assert (demo.info.template, demo.settings.image_aspect_ratio) == ("v1", "pad")
    assert demo.info.vision_tower == "siglip_vision_model"
    prompts = [q for q in demo_prompts(12) if q.endswith(("phrase.", "yes or no."))]  # short-answer prompts
    requests = [
        Request("t", str(i), f"<image>\n{q}", (images[i % 8],), GenerationSettings(max_new_tokens=16))
        for i, q in enumerate(prompts)
    ]
    single = [answer(demo, [r])[0] for r in requests]
    assert answer(demo, requests) == single  # batched = one by one
    assert all(text and len(text.split()) <= 3 for text in single), single  # trained on short answers
