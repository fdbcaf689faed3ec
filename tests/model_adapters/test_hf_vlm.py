"""The ``hf`` adapter on tiny real checkpoints of two architectures (Llava and Idefics3), no mocks."""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from transformers import Qwen2VLImageProcessorPil

from harness.errors import HarnessError, UsageError
from harness.types import GenerationSettings, ImageRef, Request
from model_adapters.hf_messages import content_parts, request_messages
from model_adapters.hf_vlm import HFVLMAdapter, set_max_pixels
from model_adapters.tinyllava import TinyLlavaAdapter
from tests.helpers.module_fixtures import noise_images
from tests.helpers.tiny_checkpoints import make_tiny_llava
from tests.helpers.tiny_vlms import make_tiny_idefics3, make_tiny_llava_chat

SIZES = [(32, 32), (48, 20), (20, 48), (64, 40), (17, 33), (90, 30)]


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[ImageRef]:
    return noise_images(tmp_path_factory.mktemp("images"), SIZES, seed=1)


@pytest.fixture(scope="module")
def llava_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_llava_chat(tmp_path_factory.mktemp("llava-chat"))


@pytest.fixture(scope="module")
def idefics_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_idefics3(tmp_path_factory.mktemp("idefics3"))


@pytest.fixture(scope="module")
def llava(llava_dir: Path) -> HFVLMAdapter:
    return HFVLMAdapter.from_spec(str(llava_dir), {}, "cpu", 0)


@pytest.fixture(scope="module")
def idefics(idefics_dir: Path) -> HFVLMAdapter:
    return HFVLMAdapter.from_spec(str(idefics_dir), {}, "cpu", 0)


def requests_for(images: list[ImageRef], max_new_tokens: int = 10) -> list[Request]:
    """Prompts of different lengths (so batches need padding), one image each."""
    settings = GenerationSettings(max_new_tokens=max_new_tokens)
    return [
        Request("t", str(i), f"<image>\nWhat colour is the shape?{' Please answer.' * i}", (image,), settings)
        for i, image in enumerate(images)
    ]


def answers(adapter: HFVLMAdapter | TinyLlavaAdapter, requests: list[Request]) -> list[str]:
    prepare = adapter.preparer()
    responses = adapter.generate(requests, [prepare(r) for r in requests])
    assert all(r.error is None for r in responses), [r.error for r in responses]
    return [r.text for r in responses]


# ---------------------------------------------------------------------------------------------
# Messages


def test_placeholders_become_image_parts_in_order() -> None:
    assert content_parts("<image>\nWhat is it?") == [{"type": "image"}, {"type": "text", "text": "What is it?"}]
    assert content_parts("Left <image> right <image>\nSame?") == [
        {"type": "text", "text": "Left"},
        {"type": "image"},
        {"type": "text", "text": "right"},
        {"type": "image"},
        {"type": "text", "text": "Same?"},
    ]
    assert content_parts("no image") == [{"type": "text", "text": "no image"}]


def test_system_message_only_when_the_request_sets_one() -> None:
    plain = request_messages(Request("t", "0", "<image>\nQ", (ImageRef("x"),)))
    assert [m["role"] for m in plain] == ["user"]
    with_system = request_messages(Request("t", "0", "Q", (), system="Be brief."))
    assert with_system[0] == {"role": "system", "content": [{"type": "text", "text": "Be brief."}]}


# ---------------------------------------------------------------------------------------------
# Llava through its processor's chat template


def test_llava_prompt_is_the_checkpoint_template(llava: HFVLMAdapter, images) -> None:
    text = llava.preparer()(requests_for(images)[0])["text"]
    assert text.endswith(" USER: <image>\nWhat colour is the shape? ASSISTANT:")
    assert text.startswith("A chat between a curious user")
    system = Request("t", "s", "<image>\nQ", (images[0],), system="Short answers.")
    assert llava.preparer()(system)["text"] == "Short answers. USER: <image>\nQ ASSISTANT:"


def test_llava_batch_of_four_equals_batch_of_one(llava: HFVLMAdapter, images) -> None:
    requests = requests_for(images[:4])
    batched = answers(llava, requests)
    single = [answers(llava, [r])[0] for r in requests]
    assert batched == single
    assert all(batched) and len(set(batched)) > 1


def test_llava_answers_match_the_tinyllava_adapter(llava: HFVLMAdapter, llava_dir: Path, images) -> None:
    # the chat template renders the v1 conversation, so both adapters see the same prompt and image
    tiny = TinyLlavaAdapter.from_spec(str(llava_dir), {}, "cpu", 0)
    requests = requests_for(images)
    assert answers(llava, requests) == answers(tiny, requests)


def test_info_and_fingerprint(llava: HFVLMAdapter, llava_dir: Path, tmp_path: Path) -> None:
    info = llava.info
    assert info.spec == f"hf:{llava_dir}" and info.name == llava_dir.name
    assert (info.dtype, info.device, info.llm) == ("float32", "cpu", "llama")
    assert info.details["architecture"] == "LlavaForConditionalGeneration"
    assert len(llava.fingerprint) == 64 and info.fingerprint == llava.fingerprint
    half = HFVLMAdapter.from_spec(str(llava_dir), {"dtype": "bfloat16"}, "cpu", 0)
    assert half.fingerprint != llava.fingerprint and half.info.dtype == "bfloat16"
    copy = shutil.copytree(llava_dir, tmp_path / "copy")
    template = copy / "chat_template.jinja"
    template.write_text(template.read_text().replace("USER:", "HUMAN:"))
    assert HFVLMAdapter.from_spec(str(copy), {}, "cpu", 0).fingerprint != llava.fingerprint


def test_preparer_pickles_for_dataloader_workers(llava: HFVLMAdapter, images) -> None:
    prepare = pickle.loads(pickle.dumps(llava.preparer()))
    request = requests_for(images)[0]
    assert prepare(request)["text"] == llava.preparer()(request)["text"]


# ---------------------------------------------------------------------------------------------
# Idefics3 (SmolVLM architecture): another processor, template and image layout


def test_idefics3_batch_of_four_equals_batch_of_one(idefics: HFVLMAdapter, images) -> None:
    requests = requests_for(images[2:])
    batched = answers(idefics, requests)
    assert batched == [answers(idefics, [r])[0] for r in requests]
    assert all(batched)


def test_idefics3_template_and_a_single_bos(idefics: HFVLMAdapter, images) -> None:
    prepared = idefics.preparer()(requests_for(images)[0])
    assert prepared["text"] == "<|im_start|>User:<image> What colour is the shape?<end_of_utterance>\nAssistant:"
    ids = idefics.model_inputs([prepared])["input_ids"][0].tolist()
    assert ids.count(idefics.tokenizer.bos_token_id) == 1
    assert idefics.info.details["architecture"] == "Idefics3ForConditionalGeneration"


def test_new_tokens_limit_and_stop_strings_per_request(idefics: HFVLMAdapter, images) -> None:
    free = Request("t", "a", "<image>\nDescribe.", (images[0],), GenerationSettings(max_new_tokens=12))
    full = answers(idefics, [free])[0]
    assert len(full) > 2
    stop = full[1:3]
    short = Request("t", "b", "<image>\nDescribe.", (images[0],), GenerationSettings(max_new_tokens=3))
    stopped = Request("t", "c", "<image>\nDescribe.", (images[0],), GenerationSettings(max_new_tokens=12, stop=(stop,)))
    prepare = idefics.preparer()
    responses = idefics.generate([free, short, stopped], [prepare(r) for r in (free, short, stopped)])
    assert responses[0].text == full
    assert responses[1].output_tokens <= 3 and full.startswith(responses[1].text)
    assert responses[2].text == full[: full.find(stop)].strip()


# ---------------------------------------------------------------------------------------------
# Errors and options


def test_checkpoint_without_chat_template_is_refused(tmp_path: Path) -> None:
    path = make_tiny_llava(tmp_path / "plain", tower="clip")
    with pytest.raises(HarnessError, match=r"has no chat template") as caught:
        HFVLMAdapter.from_spec(str(path), {}, "cpu", 0)
    assert str(path) in str(caught.value)


def test_not_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match="not a checkpoint directory"):
        HFVLMAdapter.from_spec(str(tmp_path / "missing"), {}, "cpu", 0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"conv": "phi"}, "unknown --model-args"),
        ({"dtype": "int8"}, "dtype=int8"),
        ({"attn": "x"}, "attn=x"),
        ({"max_pixels": "-3"}, "max_pixels=-3"),
    ],
)
def test_bad_model_args(llava_dir: Path, args: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        HFVLMAdapter.from_spec(str(llava_dir), args, "cpu", 0)


def test_max_pixels(idefics_dir: Path) -> None:
    with pytest.raises(UsageError, match="max_pixels: the Idefics3ImageProcessorPil image processor"):
        HFVLMAdapter.from_spec(str(idefics_dir), {"max_pixels": "4096"}, "cpu", 0)
    processor = Qwen2VLImageProcessorPil()
    big = Image.new("RGB", (1000, 800))
    grid = processor([big], return_tensors="np")["image_grid_thw"][0]
    assert grid[1] * grid[2] * 14 * 14 > 500_000
    set_max_pixels(processor, 50176)
    grid = processor([big], return_tensors="np")["image_grid_thw"][0]
    assert grid[1] * grid[2] * 14 * 14 <= 50176


def test_prompt_and_image_count_must_agree(llava: HFVLMAdapter, images) -> None:
    with pytest.raises(ValueError, match="1 <image> placeholder"):
        llava.preparer()(Request("t", "0", "<image>\nQ", (images[0], images[1])))


# ---------------------------------------------------------------------------------------------
# End to end through the CLI


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["llava", "idefics3"])
def test_cli_run_gqa(arch: str, llava_dir: Path, idefics_dir: Path, tmp_path: Path) -> None:
    path = llava_dir if arch == "llava" else idefics_dir
    out = tmp_path / "results"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "run",
            "--tasks",
            "gqa",
            "--limit",
            "8",
            "--model",
            f"hf:{path}",
            "--output-dir",
            str(out),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = [p for p in out.iterdir() if (p / "results.json").is_file()]
    result = json.loads((run_dir / "results.json").read_text())
    assert result["status"] == "complete" and result["model"]["spec"] == f"hf:{path}"
    assert result["tasks"]["gqa"]["n_samples"] == 8 and result["tasks"]["gqa"]["n_errors"] == 0
    log = [json.loads(line) for line in (run_dir / "samples" / "gqa.jsonl").read_text().splitlines()]
    assert len(log) == 8 and all(rec["response"]["text"] for rec in log)
