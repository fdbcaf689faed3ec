"""``harness convert`` output under plain transformers equals the original TinyLLaVA: pixel values (LLaVA's
``expand2square`` as ``LlavaImageProcessor`` with ``do_pad``) and logits over every vocabulary row the original
checkpoint stores, padding rows included; and the folder has what vLLM's Llava loader reads.

The original side is written from the original code, not from our converter: ``expand2square`` and
``process_images`` (TinyLLaVABench tinyllava/mm_utils.py at 2d2105f, the same as haotian-liu/LLaVA's
llava/mm_utils.py), the tower's own CLIP/SigLIP processor, and the look-alike's native language model over all
its rows (tests/helpers/tinyllava_lookalikes.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from harness.cli import main as harness_main
from harness.errors import UsageError
from model_adapters.convert import convert_checkpoint
from model_adapters.formats.runtime import embedding_carries_input_scale
from model_adapters.formats.towers import processor_settings
from model_adapters.llava_processor import llava_image_processor
from model_adapters.tinyllava import TinyLlavaAdapter
from tests.helpers.tinyllava_lookalikes import (
    CASES,
    IMAGE_TOKEN_INDEX,
    Lookalike,
    ids_with_image_marks,
    original_pixels,
    reference_logits_all_rows,
)

ATOL = 1e-5
SHAPES = [(20, 48), (48, 20), (33, 32), (7, 50), (61, 30), (32, 32)]  # (height, width)
QUESTION = "What colour is the circle?"


def random_image(height: int, width: int, seed: int = 0) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


@pytest.mark.parametrize("kind,size", [("siglip", 32), ("clip", 32), ("siglip", 384), ("clip", 336)])
def test_pad_processor_equals_expand2square_then_the_tower_processor(kind: str, size: int) -> None:
    ours = llava_image_processor(processor_settings(kind, size, []), pad=True)
    assert type(ours).__name__.startswith("LlavaImageProcessor") and ours.do_pad
    for i, (height, width) in enumerate(SHAPES):
        image = random_image(height * size // 32, width * size // 32, seed=i)
        expected = original_pixels(kind, [image], pad=True, image_size=size)
        got = torch.as_tensor(ours(image, return_tensors="np")["pixel_values"])
        assert got.shape == (1, 3, size, size)
        assert float((got - expected).abs().max()) < 1e-6, (kind, size, height, width)
    # without padding the same image is squashed (SigLIP) or cropped (CLIP): the padding is what matters
    plain = original_pixels(kind, [random_image(20, 48)], pad=False, image_size=size)
    padded = torch.as_tensor(ours(random_image(20, 48), return_tensors="np")["pixel_values"])
    assert float((plain - padded).abs().max()) > 0.1


# ---------------------------------------------------------------------------------------------
# vLLM's Llava loader, as read in vllm-project/vllm:
#   vllm/model_executor/models/llava.py at 35d3c24b11a03faf6108c5f9e7b81634ea1c3e5d (also 0004c540861d):
#     - the model class comes from config.architectures; the LLM from text_config (init_vllm_registered_model,
#       which needs text_config.architectures); the vision tower must be CLIPVisionConfig/SiglipVisionConfig;
#     - the tower is built with num_hidden_layers + vision_feature_layer + 1 layers (negative layer) and
#       require_post_norm=False; vision_feature_select_strategy "default" drops token 0, "full" keeps all;
#     - LlavaMultiModalProjector: linear_1 [text_hidden, vision_hidden], act projector_hidden_act, linear_2
#       [text_hidden, text_hidden], biases when multimodal_projector_bias;
#     - pixel values must be (3, image_size, image_size); each image is image_token_index repeated
#       get_num_image_tokens() times (patches (+1 CLIP CLS), minus 1 for "default");
#     - AutoWeightsLoader: names under vision_tower., multi_modal_projector., language_model. (the
#       transformers-4.36 layout; hf_to_vllm_mapper maps the >= 4.52 names onto it); an unknown name raises.
#   vllm/model_executor/models/siglip.py at 0531c2226a6a: weights vision_model.*; encoder layers past the
#     built count and post_layernorm (when not built) are skipped; head.* only when vision_use_head.
#   vllm/model_executor/models/phi.py at 030c9eb82cd3: PhiForCausalLM has lm_head = ParallelLMHead(bias=True),
#     model.embed_tokens [vocab_size, hidden], q/k/v_proj stacked into qkv_proj; the default loader raises
#     "Following weights were not initialized from checkpoint" when lm_head.bias is absent.

VLLM_TEXT_MODELS = {"PhiForCausalLM", "LlamaForCausalLM", "StableLmForCausalLM", "Qwen2ForCausalLM",
                    "GemmaForCausalLM"}
BIASED_HEAD = {"PhiForCausalLM"}


def weight_shapes(folder: Path) -> dict[str, tuple[int, ...]]:
    from safetensors import safe_open

    shapes = {}
    for file in sorted(folder.glob("model*.safetensors")):
        with safe_open(file, "pt") as handle:
            for key in handle.keys():  # noqa: SIM118 - safe_open has no __iter__
                shapes[key] = tuple(handle.get_slice(key).get_shape())
    return shapes


def vllm_problems(folder: Path) -> list[str]:
    """What vLLM's Llava loader (the rules above) would refuse or compute differently; [] when it loads."""
    from transformers import AutoProcessor

    config = json.loads((folder / "config.json").read_text())
    text, vision = config["text_config"], config["vision_config"]
    problems = []
    if config.get("architectures") != ["LlavaForConditionalGeneration"]:
        problems.append(f"architectures {config.get('architectures')}")
    text_arch = (text.get("architectures") or [None])[0]
    if text_arch not in VLLM_TEXT_MODELS:
        problems.append(f"text_config.architectures {text.get('architectures')}")
    if vision["model_type"] not in ("clip_vision_model", "siglip_vision_model"):
        problems.append(f"vision model_type {vision['model_type']}")
    strategy, layer = config["vision_feature_select_strategy"], config["vision_feature_layer"]
    if strategy not in ("default", "full") or not isinstance(layer, int):
        problems.append(f"feature selection {strategy} / {layer}")
    if config.get("projector_hidden_act") != "gelu" or config.get("multimodal_projector_bias", True) is not True:
        problems.append("projector settings")
    vocab, hidden, v_hidden = text["vocab_size"], text["hidden_size"], vision["hidden_size"]
    if not 0 <= config["image_token_index"] < vocab:
        problems.append(f"image_token_index {config['image_token_index']} outside the {vocab}-row embedding")

    shapes = weight_shapes(folder)
    prefixes = ("vision_tower.vision_model.", "multi_modal_projector.", "language_model.model.",
                "language_model.lm_head.")
    problems += [f"unknown weight {k}" for k in shapes if not k.startswith(prefixes)]
    want = {
        "multi_modal_projector.linear_1.weight": (hidden, v_hidden), "multi_modal_projector.linear_1.bias": (hidden,),
        "multi_modal_projector.linear_2.weight": (hidden, hidden), "multi_modal_projector.linear_2.bias": (hidden,),
        "language_model.model.embed_tokens.weight": (vocab, hidden),
    }
    if not text.get("tie_word_embeddings", config.get("tie_word_embeddings", False)):
        want["language_model.lm_head.weight"] = (vocab, hidden)
    if text_arch in BIASED_HEAD:
        want["language_model.lm_head.bias"] = (vocab,)
    elif "language_model.lm_head.bias" in shapes:
        problems.append(f"language_model.lm_head.bias has no place in vLLM's {text_arch}")
    built = vision["num_hidden_layers"] + layer + 1 if layer < 0 else layer
    for i in range(built):
        want[f"vision_tower.vision_model.encoder.layers.{i}.self_attn.q_proj.weight"] = (v_hidden, v_hidden)
    want["vision_tower.vision_model.embeddings.patch_embedding.weight"] = (
        v_hidden, 3, vision["patch_size"], vision["patch_size"])
    problems += [f"{k}: {shapes.get(k)} != {v}" for k, v in want.items() if shapes.get(k) != v]
    if vision["model_type"].startswith("siglip") and vision.get("vision_use_head", True) is not False:
        problems.append("SigLIP vision_use_head is not false (vLLM would expect head.* weights)")
    if any(".head." in k for k in shapes):
        problems.append("SigLIP head weights")

    processor = AutoProcessor.from_pretrained(folder)
    size = vision["image_size"]
    pixels = processor.image_processor(random_image(20, 48), return_tensors="np")["pixel_values"]
    if tuple(pixels.shape[1:]) != (3, size, size):
        problems.append(f"pixel values {pixels.shape[1:]} != (3, {size}, {size})")
    tokenizer = processor.tokenizer
    if tokenizer.convert_tokens_to_ids(processor.image_token) != config["image_token_index"]:
        problems.append("the processor's image token is not image_token_index")
    patches = (size // vision["patch_size"]) ** 2 + (1 if vision["model_type"].startswith("clip") else 0)
    per_image = patches - (1 if strategy == "default" else 0)
    ids = processor(text="<image>\nHi", images=[random_image(20, 48)])["input_ids"][0]
    if list(ids).count(config["image_token_index"]) != per_image:
        problems.append(f"the processor repeats <image> {list(ids).count(config['image_token_index'])}x, "
                        f"vLLM {per_image}x")
    return problems


# ---------------------------------------------------------------------------------------------
# Plain transformers against the original, every format


def plain_model(folder: Path) -> tuple[Any, set[str]]:
    from transformers import LlavaForConditionalGeneration

    model, info = LlavaForConditionalGeneration.from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["mismatched_keys"]
    return model.eval(), set(info["unexpected_keys"])


def original_ids(original: Lookalike, prompt: str, n_image_tokens: int, image_id: int) -> list[int]:
    """``tokenizer_image_token`` of the prompt with -200 widened to the image's feature count."""
    ids = []
    for token in ids_with_image_marks(prompt, original.tokenizer):
        ids.extend([image_id] * n_image_tokens if token == IMAGE_TOKEN_INDEX else [token])
    return ids


@pytest.mark.parametrize("name", list(CASES))
def test_plain_transformers_computes_what_the_original_computes(name: str, tmp_path: Path) -> None:
    from transformers import AutoProcessor

    fabricate, _, n_image_tokens = CASES[name]
    original, args = fabricate(tmp_path / "src")
    out = tmp_path / "hf"
    convert_checkpoint(original.path, out, args)
    phi = json.loads((out / "config.json").read_text())["text_config"]["model_type"] == "phi"
    problems = vllm_problems(out)
    missing_bias = [p for p in problems if p.startswith("language_model.lm_head.bias: None")]
    assert [p for p in problems if p not in missing_bias] == []
    assert bool(missing_bias) == phi  # Phi loads in vLLM with --with-lm-head-bias (tested below)

    processor = AutoProcessor.from_pretrained(out)
    image = random_image(20, 48)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    encoded = processor(text=text, images=[image], return_tensors="pt")

    pad = original.config.get("image_aspect_ratio") == "pad"
    expected_pixels = original_pixels(original.tower_kind, [image], pad=pad)
    assert float((encoded["pixel_values"] - expected_pixels).abs().max()) < 1e-6
    image_id = processor.image_token_id
    assert encoded["input_ids"][0].tolist() == original_ids(original, text, n_image_tokens, image_id)

    model, unexpected = plain_model(out)
    assert not unexpected
    reference = reference_logits_all_rows(original, ids_with_image_marks(text, original.tokenizer), expected_pixels)
    if embedding_carries_input_scale(model):  # Gemma under transformers 5: image features miss sqrt(hidden_size)
        with torch.no_grad():
            gap = (model(**encoded).logits[0][:, : reference.shape[1]] - reference).abs().max()
        assert gap > 0.1  # plain transformers 5 differs (convert's note says so); loading DST as ours does not
        model = TinyLlavaAdapter.from_spec(str(out), {}, "cpu", 0).model
    with torch.no_grad():
        plain = model(**encoded).logits[0]
    stored = reference.shape[1]
    assert plain.shape[1] >= stored  # every original row is there (one more only for an appended <image>)
    head = original.language_model.get_output_embeddings()
    trained = getattr(head, "bias", None)
    if trained is not None and bool(trained.any()):  # Factory Phi: plain Llava has no head bias
        torch.testing.assert_close(plain[:, :stored] + trained, reference, atol=ATOL, rtol=0)
    else:
        torch.testing.assert_close(plain[:, :stored], reference, atol=ATOL, rtol=0)
    if plain.shape[1] > stored:
        assert image_id == stored  # appended only where the checkpoint has no padding row
    else:
        assert image_id < stored


def test_padding_rows_keep_their_weights_and_decode_to_nothing(tmp_path: Path) -> None:
    """Legacy Phi: 13 padding rows past the tokenizer. Plain transformers' head holds them unchanged, so a
    greedy step picks padding id r exactly where the original's head does; r decodes to '' with the converted
    tokenizer as with the original's (fast) one, the reused ``<image>`` row to '<image>' unless
    ``skip_special_tokens``."""
    from transformers import AutoTokenizer

    fabricate, _, _ = CASES["legacy-phi-siglip"]
    original, _ = fabricate(tmp_path / "src")
    convert_checkpoint(original.path, tmp_path / "hf", {})
    model, _ = plain_model(tmp_path / "hf")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "hf")
    head = original.language_model.get_output_embeddings().weight.detach()
    live, stored = len(original.tokenizer), head.shape[0]
    assert stored > live + 1
    assert torch.equal(model.get_output_embeddings().weight.detach(), head)
    assert torch.equal(model.get_input_embeddings().weight.detach(),
                       original.language_model.get_input_embeddings().weight.detach())
    for row in (live + 1, stored - 1):
        assert tokenizer.decode([row]) == original.tokenizer.decode([row]) == ""
    assert tokenizer.convert_ids_to_tokens(live) == "<image>"
    assert tokenizer.decode([live], skip_special_tokens=True) == ""
    assert original.tokenizer.decode([live]) == ""


@pytest.mark.parametrize("name", ["legacy-phi-siglip", "factory-phi-siglip"])
def test_with_lm_head_bias_writes_the_weight_vllm_phi_needs(name: str, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from safetensors.torch import load_file

    fabricate, _, _ = CASES[name]
    original, _ = fabricate(tmp_path / "src")
    plain_out, biased_out = tmp_path / "plain", tmp_path / "biased"
    report = convert_checkpoint(original.path, plain_out, {})
    assert any("convert with --with-lm-head-bias" in note for note in report.notes)
    assert "language_model.lm_head.bias" not in weight_shapes(plain_out)
    assert "language_model.lm_head.bias: None" in " ".join(vllm_problems(plain_out))  # vLLM's Phi would refuse
    assert harness_main(["convert", str(original.path), str(biased_out), "--with-lm-head-bias"]) == 0
    assert "note: model.safetensors holds language_model.lm_head.bias" in capsys.readouterr().out
    assert vllm_problems(biased_out) == []
    weight = load_file(biased_out / "model.safetensors")["language_model.lm_head.bias"]
    head = original.language_model.get_output_embeddings()
    torch.testing.assert_close(weight, head.bias.detach(), atol=0, rtol=0)  # every row: trained, or zeros
    # plain transformers names it as unexpected and computes what it computes without it
    _, unexpected = plain_model(biased_out)
    assert unexpected <= {"language_model.lm_head.bias", "lm_head.bias"} and unexpected
    # the tinyllava adapter still re-attaches the side file's bias (rows the original's loader cuts off masked)
    adapter = TinyLlavaAdapter.from_spec(str(biased_out), {}, "cpu", 0)
    side = load_file(biased_out / "lm_head_bias.safetensors")["lm_head.bias"]
    torch.testing.assert_close(adapter.model.get_output_embeddings().bias.detach(), side, atol=0, rtol=0)


def test_with_lm_head_bias_is_refused_for_a_head_without_bias(tmp_path: Path) -> None:
    fabricate, _, _ = CASES["factory-qwen2-siglip"]
    original, _ = fabricate(tmp_path / "src")
    with pytest.raises(UsageError, match="--with-lm-head-bias: the qwen2 language model has no lm_head bias"):
        convert_checkpoint(original.path, tmp_path / "hf", {}, with_lm_head_bias=True)


def test_hf_llava_sources_keep_their_rows_and_padding(tmp_path: Path) -> None:
    """An HF Llava source is its own original: converting it (or a converted pad checkpoint again) changes
    neither the logits over its rows nor the pixel values."""
    from transformers import AutoImageProcessor, AutoProcessor

    from tests.helpers.tiny_checkpoints import make_tiny_llava

    fabricate, _, _ = CASES["legacy-phi-siglip"]
    original, _ = fabricate(tmp_path / "src")
    sources = {"hf": make_tiny_llava(tmp_path / "hf-src", tower="clip", old_processor_config=True, template="v1"),
               "converted": tmp_path / "first"}
    convert_checkpoint(original.path, sources["converted"], {})
    image = random_image(20, 48)
    for label, source in sources.items():
        out = tmp_path / f"again-{label}"
        report = convert_checkpoint(source, out, {})
        assert report.image_aspect_ratio == ("pad" if label == "converted" else "square")
        new = AutoProcessor.from_pretrained(out)(text="<image>\nWhat is it?", images=[image], return_tensors="pt")
        old_pixels = AutoImageProcessor.from_pretrained(source)(image, return_tensors="pt")["pixel_values"]
        assert float((old_pixels - new["pixel_values"]).abs().max()) < 1e-6
        with torch.no_grad():
            want = plain_model(source)[0](input_ids=new["input_ids"], pixel_values=old_pixels).logits[0]
            got = plain_model(out)[0](**new).logits[0]
        torch.testing.assert_close(got, want, atol=ATOL, rtol=0)
    expected = original_pixels("siglip", [image], pad=True)
    again = AutoProcessor.from_pretrained(tmp_path / "again-converted")
    assert float((again.image_processor(image, return_tensors="pt")["pixel_values"] - expected).abs().max()) < 1e-6


def test_training_from_a_converted_gemma_original_runs_it_as_the_adapter_does(tmp_path: Path) -> None:
    """``training`` fine-tuning a converted checkpoint of a Gemma original (``init_from``) must compute what the
    adapter evaluates: image features with the original's sqrt(hidden_size) factor; a Llava checkpoint that does
    not come from an original (no ``tinyllava_source_format``) keeps transformers' own computation."""
    from transformers import AutoProcessor

    from training.model import load_llava

    fabricate, _, _ = CASES["factory-gemma-clip-stage"]
    original, args = fabricate(tmp_path / "src")
    out = tmp_path / "hf"
    convert_checkpoint(original.path, out, args)
    processor = AutoProcessor.from_pretrained(out)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}]
    encoded = processor(text=processor.apply_chat_template(messages, add_generation_prompt=True),
                        images=[random_image(20, 48)], return_tensors="pt")  # fmt: skip
    live = original.live_vocab  # the adapter also masks the appended <image> row; training has no such bias
    with torch.no_grad():
        ours = TinyLlavaAdapter.from_spec(str(out), {}, "cpu", 0).model(**encoded).logits[..., :live]
        trained, _, _ = load_llava(str(out), torch.float32, "eager")
        torch.testing.assert_close(trained.eval()(**encoded).logits[..., :live], ours, atol=ATOL, rtol=0)
        config = json.loads((out / "config.json").read_text())
        del config["tinyllava_source_format"]
        (out / "config.json").write_text(json.dumps(config))
        plain, _, _ = load_llava(str(out), torch.float32, "eager")
        assert float((plain.eval()(**encoded).logits[..., :live] - ours).abs().max()) > 0.1
