"""Format detection, tower fallback, fingerprints, and one clear message for each kind of bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from harness.errors import HarnessError, UsageError
from model_adapters.fingerprint import fingerprint
from model_adapters.formats import detect
from model_adapters.tinyllava import TinyLlavaAdapter
from tests.helpers.tinyllava_lookalikes import make_factory, make_legacy, make_projector_only, reference_logits


def load(path: Path, args: dict[str, str] | None = None) -> TinyLlavaAdapter:
    return TinyLlavaAdapter.from_spec(str(path), args or {}, "cpu", 0)


def edit_config(path: Path, **fields: Any) -> None:
    config = json.loads((path / "config.json").read_text())
    config.update(fields)
    (path / "config.json").write_text(json.dumps(config))


def one_line(error: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def text_only_logits(adapter: TinyLlavaAdapter, original: Any) -> None:
    ids = original.tokenizer("USER: hello ASSISTANT:").input_ids
    with torch.no_grad():
        ours = adapter.model(input_ids=torch.tensor([ids])).logits[0, :, : original.live_vocab]
    torch.testing.assert_close(ours, reference_logits(original, ids, None), atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------------
# Detection and dispatch


def test_dispatch_uses_architectures_not_names(tmp_path: Path) -> None:
    # the pre-June-2024 TinyLLaVA-1.5B said model_type "tinyllava" (the Factory's) but is legacy TinyLlama
    original = make_legacy(tmp_path / "a", "llama", "clip", shards=1)
    edit_config(original.path, model_type="tinyllava")
    assert (detect(original.path).format, detect(original.path).family) == ("legacy", "llama")
    # a directory name full of other formats' words changes nothing
    odd = tmp_path / "TinyLLaVA-Factory-phi-3.1B-lora"
    shutil.copytree(original.path, odd)
    adapter = load(odd)
    assert (adapter.format, adapter.info.template, adapter.info.llm) == ("legacy", "v1", "llama")
    text_only_logits(adapter, original)


def test_legacy_tower_falls_back_to_a_tower_directory(tmp_path: Path) -> None:
    original = make_legacy(tmp_path / "a", "phi", "siglip", tower_in_checkpoint=False)
    adapter = load(original.path)  # mm_vision_tower is a local directory
    assert any("vision tower weights from" in note for note in adapter.info.details["notes"])
    tower = original.extra_dirs["tower"]
    moved = tmp_path / "elsewhere"
    shutil.move(tower, moved)
    with pytest.raises(HarnessError) as err:
        load(original.path)
    assert "tower=PATH" in one_line(err)
    again = load(original.path, {"tower": str(moved)})
    assert again.info.details["image_tokens"] == 16
    # the tower's files enter the fingerprint
    weights = load_file(moved / "model.safetensors")
    weights["vision_model.post_layernorm.bias"] += 1.0
    save_file(weights, moved / "model.safetensors", metadata={"format": "pt"})
    assert load(original.path, {"tower": str(moved)}).fingerprint != again.fingerprint


def test_fingerprint_hashes_the_source_and_the_base(tmp_path: Path) -> None:
    base = make_legacy(tmp_path / "base", "phi", "siglip", shards=1)
    partial = make_projector_only(tmp_path, base)
    args = {"base": str(base.path)}
    adapter = load(partial.path, args)
    copy_src = Path(shutil.copytree(partial.path, tmp_path / "copy-src"))
    copy_base = Path(shutil.copytree(base.path, tmp_path / "copy-base"))
    assert load(copy_src, {"base": str(copy_base)}).fingerprint == adapter.fingerprint  # content, not location
    assert fingerprint(partial.path, adapter.fingerprint_settings()) == adapter.fingerprint
    weights = load_file(copy_base / "model.safetensors")
    weights["model.final_layernorm.bias"] += 1.0
    save_file(weights, copy_base / "model.safetensors", metadata={"format": "pt"})
    assert load(copy_src, {"base": str(copy_base)}).fingerprint != adapter.fingerprint


def test_recorded_factory_template_names_are_mapped(tmp_path: Path) -> None:
    original = make_factory(tmp_path / "a", "qwen2", "siglip")
    edit_config(original.path, conv_version="qwen2_instruct")
    assert load(original.path).info.template == "qwen2"
    assert load(original.path, {"conv": "v1"}).info.template == "v1"  # conv overrides


# ---------------------------------------------------------------------------------------------
# Bad input: one clear line, before any generation


def test_unknown_model_type_lists_the_supported_ones(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "mystery_vlm"}))
    with pytest.raises(HarnessError) as err:
        load(tmp_path)
    message = one_line(err)
    assert "mystery_vlm" in message
    for name in ("llava", "tiny_llava", "tiny_llava_phi", "tiny_llava_stablelm", "llava_phi", "tinyllava"):
        assert name in message


def test_original_llava_is_named(tmp_path: Path) -> None:
    config = {"model_type": "llava", "architectures": ["LlavaLlamaForCausalLM"]}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(HarnessError, match="original LLaVA checkpoint"):
        load(tmp_path)


def test_missing_shard_is_named(tmp_path: Path) -> None:
    original = make_legacy(tmp_path / "a", "phi", "siglip", shards=2)
    (original.path / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(HarnessError) as err:
        load(original.path)
    assert "missing shard model-00002-of-00002.safetensors" in one_line(err)
    (original.path / "model.safetensors.index.json").unlink()  # numbered shards without an index
    with pytest.raises(HarnessError, match=r"missing shard model-00002-of-00002\.safetensors"):
        load(original.path)


def test_shape_disagreeing_with_the_config_names_tensor_and_shapes(tmp_path: Path) -> None:
    original = make_factory(tmp_path / "a", "phi", "siglip")
    config = json.loads((original.path / "config.json").read_text())
    config["text_config"]["intermediate_size"] = 96
    (original.path / "config.json").write_text(json.dumps(config))
    with pytest.raises(HarnessError) as err:
        load(original.path)
    message = one_line(err)
    assert "language_model.model.layers.0.mlp.fc1.weight" in message
    assert "[128, 64]" in message and "[96, 64]" in message


def test_projector_shape_mismatch(tmp_path: Path) -> None:
    original = make_legacy(tmp_path / "a", "llama", "clip", shards=1)
    weights = load_file(original.path / "model.safetensors")
    weights["model.mm_projector.2.weight"] = weights["model.mm_projector.2.weight"][:, :10].contiguous()
    save_file(weights, original.path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(HarnessError) as err:
        load(original.path)
    assert "model.mm_projector.2.weight has shape [64, 10] but the config implies [64, 64]" in one_line(err)


def test_undeterminable_template_lists_the_choices(tmp_path: Path) -> None:
    original = make_factory(tmp_path / "a", "phi", "siglip")
    config = json.loads((original.path / "config.json").read_text())
    config["text_config"]["model_type"] = "mistral"  # a family without a documented Factory template
    (original.path / "config.json").write_text(json.dumps(config))
    (original.path / "model.safetensors").unlink()  # the template is decided before any weights are read
    with pytest.raises(HarnessError) as err:
        load(original.path)
    message = one_line(err)
    assert "conv=NAME" in message and "phi, v1, llama, gemma, qwen2" in message
    edit_config(original.path, conv_mode="llava_v1")
    with pytest.raises(UsageError, match=r"unknown chat template 'llava_v1'; valid templates: phi, v1, llama"):
        load(original.path)


def test_openelm_is_not_supported(tmp_path: Path) -> None:
    original = make_factory(tmp_path / "a", "phi", "siglip")
    config = json.loads((original.path / "config.json").read_text())
    config["text_config"]["model_type"] = "openelm"
    (original.path / "config.json").write_text(json.dumps(config))
    with pytest.raises(HarnessError) as err:
        load(original.path)
    assert "'openelm' has no native transformers class" in one_line(err)


def test_partial_checkpoints_need_their_base(tmp_path: Path) -> None:
    base = make_legacy(tmp_path / "base", "phi", "siglip", shards=1)
    partial = make_projector_only(tmp_path, base)
    with pytest.raises(HarnessError) as err:
        load(partial.path)
    assert "projector-only" in one_line(err) and "base=PATH" in one_line(err)
    with pytest.raises(HarnessError, match="base= applies to projector-only and LoRA"):
        load(base.path, {"base": str(base.path)})
    with pytest.raises(UsageError, match="base= is not used for HF Llava checkpoints"):
        from tests.helpers.tiny_checkpoints import make_tiny_llava

        load(make_tiny_llava(tmp_path / "hf", tower="siglip"), {"base": str(base.path)})
