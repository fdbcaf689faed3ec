"""``harness convert`` output under plain transformers 4.x (the newest 4.x release, in a venv of its own) equals the
original TinyLLaVA, every format: the chat template, the input ids, the pixels and the logits over every row the
original stores. Written by transformers 5, read by 4.x: the RoPE settings (Qwen2's theta, phi-2's rotary share)
and the tokenizer's input names must be spelled so that 4.x reads them, and 4.x's Gemma gives image features the
original's sqrt(hidden_size) factor by itself.

The venv is built when missing (``tests/helpers/transformers4.py``; ``$HARNESS_TF4_VENV`` or ``<repo>/.venv-tf4``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from model_adapters.convert import convert_checkpoint
from tests.helpers.tinyllava_lookalikes import CASES, ids_with_image_marks, original_pixels, reference_logits_all_rows
from tests.helpers.transformers4 import QUESTION, ensure_venv, run_transformers4
from tests.model_adapters.test_convert_fidelity import ATOL, original_ids, random_image


@pytest.fixture(scope="module")
def transformers4() -> Path:
    try:
        return ensure_venv()
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        pytest.fail(f"could not build the transformers 4 venv: {exc}")


def test_converted_checkpoints_compute_the_original_in_transformers_4(transformers4: Path, tmp_path: Path) -> None:
    from transformers import AutoProcessor

    expected = {}
    for name, (fabricate, _, n_image_tokens) in CASES.items():
        folder = tmp_path / name
        original, args = fabricate(folder / "src")
        convert_checkpoint(original.path, folder / "hf", args)
        image = random_image(20, 48)
        image.save(folder / "image.png")
        processor = AutoProcessor.from_pretrained(folder / "hf")  # transformers 5's rendering, to compare with
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}]
        text = processor.apply_chat_template(messages, add_generation_prompt=True)
        pixels = original_pixels(original.tower_kind, [image], pad=original.config.get("image_aspect_ratio") == "pad")
        reference = reference_logits_all_rows(original, ids_with_image_marks(text, original.tokenizer), pixels)
        bias = getattr(original.language_model.get_output_embeddings(), "bias", None)
        if bias is not None and bool(bias.any()):  # Factory Phi's trained head bias: plain Llava has none
            reference = reference - bias
        ids = original_ids(original, text, n_image_tokens, processor.image_token_id)
        expected[name] = (text, ids, pixels, reference.detach())

    run_transformers4(transformers4, tmp_path)

    for name, (text, ids, pixels, reference) in expected.items():
        result = json.loads((tmp_path / name / "tf4.json").read_text())
        assert "error" not in result, f"{name}: {result.get('error')}"
        assert result["transformers"].startswith("4."), result["transformers"]
        assert result["text"] == text, name
        assert result["input_ids"] == ids, name
        assert result["inputs"] == ["attention_mask", "input_ids", "pixel_values"], name
        assert result["loading"] == {"missing_keys": [], "mismatched_keys": [], "unexpected_keys": []}, name
        arrays = np.load(tmp_path / name / "tf4.npz")
        assert float(np.abs(arrays["pixel_values"] - pixels.numpy()).max()) < 1e-6, name
        logits = torch.from_numpy(arrays["logits"])
        stored = reference.shape[1]
        assert logits.shape[0] == reference.shape[0] and logits.shape[1] >= stored, name
        torch.testing.assert_close(logits[:, :stored], reference, atol=ATOL, rtol=0, msg=lambda m, n=name: f"{n}: {m}")
