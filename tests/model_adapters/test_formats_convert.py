"""``python -m harness convert``: every format becomes a plain HF Llava checkpoint that transformers loads
without custom code; what plain transformers would drop (an lm_head bias) is written beside it, named in
the printed warning, and re-attached by the tinyllava adapter."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from harness.cli import main as harness_main
from harness.errors import HarnessError
from harness.types import GenerationSettings, ImageRef, Request
from model_adapters.convert import convert_checkpoint
from model_adapters.formats.runtime import embedding_carries_input_scale
from model_adapters.tinyllava import TinyLlavaAdapter
from tests.helpers.paths import REPO
from tests.helpers.tiny_checkpoints import make_tiny_llava
from tests.helpers.tinyllava_lookalikes import CASES, Lookalike, ids_with_image_marks, reference_logits

ATOL = 1e-5


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> ImageRef:
    path = tmp_path_factory.mktemp("img") / "wide.png"
    Image.fromarray(np.random.default_rng(2).integers(0, 256, size=(20, 48, 3), dtype=np.uint8)).save(path)
    return ImageRef(path=str(path))


def plain_load(path: Path) -> torch.nn.Module:
    from transformers import LlavaForConditionalGeneration

    model, info = LlavaForConditionalGeneration.from_pretrained(path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    return model.eval()


def inputs(adapter: TinyLlavaAdapter, original: Lookalike, image: ImageRef) -> tuple[torch.Tensor, torch.Tensor, list]:
    request = Request("t", "x", "<image>\nWhat colour is the circle?", (image,), GenerationSettings(max_new_tokens=4))
    item = adapter.preparer()(request)
    marked = ids_with_image_marks(adapter.preparer().prompt_text(request), original.tokenizer)
    return torch.tensor([item["input_ids"]]), torch.from_numpy(item["pixel_values"]), marked


@pytest.mark.parametrize("name", list(CASES))
def test_converted_checkpoint_loads_plainly_and_keeps_the_logits(
    name: str, tmp_path: Path, image: ImageRef, capsys: pytest.CaptureFixture[str]
) -> None:
    fabricate, template, image_tokens = CASES[name]
    original, args = fabricate(tmp_path / "src")
    out = tmp_path / "hf"
    model_args = ",".join(f"{k}={v}" for k, v in args.items())
    assert harness_main(["convert", str(original.path), str(out), *(["--model-args", model_args] if args else [])]) == 0
    printed = capsys.readouterr().out

    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "llava" and config["conv_mode"] == template
    assert config["image_aspect_ratio"] == ("pad" if original.layout == "legacy" else "square")
    adapter = TinyLlavaAdapter.from_spec(str(out), {}, "cpu", 0)  # our adapter reads it back
    ids, pixels, marked = inputs(adapter, original, image)
    reference = reference_logits(original, marked, pixels)
    live = original.live_vocab
    with torch.no_grad():
        ours = adapter.model(input_ids=ids, pixel_values=pixels).logits[0]
        plain_model = plain_load(out)
        plain = plain_model(input_ids=ids, pixel_values=pixels).logits[0]
    torch.testing.assert_close(ours[:, :live], reference, atol=ATOL, rtol=0)

    # answers cached before the factor was restored (Gemma under transformers 5) do not match the new fingerprint
    assert ("image_features" in adapter.fingerprint_settings()) == embedding_carries_input_scale(plain_model)
    bias_file = out / "lm_head_bias.safetensors"
    trained = name.startswith("factory-phi") or name == "factory-lora"  # Factory Phi keeps its lm_head.bias
    if trained:
        from safetensors.torch import load_file

        bias = load_file(bias_file)["lm_head.bias"][:live]
        torch.testing.assert_close(plain[:, :live] + bias, reference, atol=ATOL, rtol=0)
        assert float((plain[:, :live] - reference).abs().max()) > 0.5  # dropping it does change scores
        assert "lm_head.bias" in printed and "plain transformers ignores" in printed
        assert "trained lm_head.bias" in printed
    elif embedding_carries_input_scale(plain_model):  # Gemma under transformers 5: image features miss a factor
        assert float((plain[:, :live] - reference).abs().max()) > 0.1
        assert "sqrt(hidden_size)" in printed and "--model tinyllava:DST" in printed
    else:
        torch.testing.assert_close(plain[:, :live], reference, atol=ATOL, rtol=0)
        assert "sqrt(hidden_size)" not in printed
    masked_rows = ours.shape[1] > live
    assert bias_file.is_file() == (trained or masked_rows)
    stored = original.language_model.get_output_embeddings().out_features
    assert ours.shape[1] >= stored  # every row of the checkpoint is kept
    if stored > live:  # legacy: padding rows the original's loader cuts off, masked for the adapter
        assert f"Rows {live}..{stored - 1} (padding rows of the checkpoint's vocabulary" in printed
    if ours.shape[1] > stored:
        assert f"Row {stored} (the added <image> token) is masked" in printed
    assert "pad each image" not in printed  # the processor pads itself
    assert ("plain transformers ignores" in printed) == bias_file.is_file()
    assert adapter.preparer().n_image_tokens == image_tokens


def test_processor_loads_and_renders_the_conversation(tmp_path: Path, image: ImageRef) -> None:
    from transformers import AutoProcessor

    fabricate, _, _ = CASES["factory-phi-siglip"]
    original, _ = fabricate(tmp_path / "src")
    report = convert_checkpoint(original.path, tmp_path / "hf", {})
    processor = AutoProcessor.from_pretrained(tmp_path / "hf")
    adapter = TinyLlavaAdapter.from_spec(str(tmp_path / "hf"), {}, "cpu", 0)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What colour is it?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    assert text == adapter.settings.template.render("<image>\nWhat colour is it?")
    encoded = processor(text=text, images=[image.open()], return_tensors="pt")
    image_id = json.loads((tmp_path / "hf" / "config.json").read_text())["image_token_index"]
    assert processor.image_token_id == image_id
    assert int((encoded["input_ids"] == image_id).sum()) == 15  # the Factory's 728-token analogue
    assert report.template == "phi" and report.image_aspect_ratio == "square"
    ours = adapter.preparer().pixel_values([image.open()])
    np.testing.assert_allclose(encoded["pixel_values"].numpy(), ours, atol=1e-6)


def test_hf_llava_input_gets_a_complete_processor(tmp_path: Path) -> None:
    from transformers import AutoProcessor

    source = make_tiny_llava(tmp_path / "old", tower="clip", old_processor_config=True, template="v1")
    report = convert_checkpoint(source, tmp_path / "hf", {})
    assert report.source_format == "HF Llava" and not report.warnings
    processor = AutoProcessor.from_pretrained(tmp_path / "hf")
    assert processor.patch_size == 8 and processor.vision_feature_select_strategy == "default"
    plain_load(tmp_path / "hf")
    assert TinyLlavaAdapter.from_spec(str(tmp_path / "hf"), {}, "cpu", 0).info.template == "v1"


def test_convert_refuses_a_non_empty_destination_and_bad_args(tmp_path: Path) -> None:
    source = make_tiny_llava(tmp_path / "src", tower="siglip", template="phi")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    with pytest.raises(HarnessError, match="not empty"):
        convert_checkpoint(source, tmp_path / "busy", {})
    with pytest.raises(HarnessError, match="unknown --model-args key"):
        convert_checkpoint(source, tmp_path / "out", {"attn": "eager"})


def test_a_killed_convert_leaves_no_destination_and_a_rerun_completes(tmp_path: Path) -> None:
    """The checkpoint is written into a hidden sibling folder and renamed into place when whole."""
    source = make_tiny_llava(tmp_path / "src", tower="siglip", template="phi")
    out = tmp_path / "out"
    # The process kills itself right after writing the weights, so the kill lands mid-write every time.
    killer = ("import os, signal, sys\n"
              "import model_adapters.convert as convert\n"
              "real = convert.save_weights\n"
              "def save_then_die(*args, **kwargs):\n"
              "    real(*args, **kwargs)\n"
              "    os.kill(os.getpid(), signal.SIGKILL)\n"
              "convert.save_weights = save_then_die\n"
              "from harness.cli import main\n"
              "sys.exit(main(sys.argv[1:]))\n")
    arguments = ["convert", str(source), str(out)]
    killed = subprocess.run([sys.executable, "-c", killer, *arguments], capture_output=True, text=True,
                            timeout=600, cwd=REPO)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert any(p.is_file() for p in tmp_path.glob(".out.partial-*/*")), "the kill came before any file was written"
    assert not out.exists()
    done = subprocess.run([sys.executable, "-m", "harness", *arguments], capture_output=True, text=True,
                          timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stderr
    plain_load(out)
