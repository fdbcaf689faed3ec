"""Language models: native transformers configs and the checks of their weights."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from harness.errors import HarnessError
from model_adapters.formats.converted import Part, check_part, module_shapes
from model_adapters.formats.tensors import first_line

# LLaVA bookkeeping in legacy configs; everything else is the language model's own config.
LEGACY_FIELD_PREFIXES = ("mm_", "tune_", "tokenizer_", "freeze_", "unfreeze_", "pretrain_")
LEGACY_FIELDS = (
    "auto_map",
    "architectures",
    "model_type",
    "image_aspect_ratio",
    "image_grid_pinpoints",
    "use_mm_proj",
    "pad_token",
    "conv_mode",
    "conv_version",
    "conv_template",
    "_name_or_path",
    "transformers_version",
    "torch_dtype",
    "dtype",
)
# StableLM-epoch (the remote code the legacy 2.0B vendors) -> transformers StableLm.
STABLELM_RENAMES = {"rope_pct": "partial_rotary_factor", "norm_eps": "layer_norm_eps"}
STABLELM_EPOCH_DEFAULTS = {"rope_pct": 0.25, "norm_eps": 1e-5, "use_qkv_bias": True, "num_key_value_heads": 32}
REQUIRED_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads")


def legacy_text_fields(config: Mapping[str, Any], family: str) -> dict[str, Any]:
    """The language-model part of a legacy TinyLLaVA config, in transformers' field names."""
    fields = {
        k: v
        for k, v in config.items()
        if k not in LEGACY_FIELDS and not k.startswith(LEGACY_FIELD_PREFIXES)
    }
    if family == "stablelm":
        fields = {**STABLELM_EPOCH_DEFAULTS, **fields}
        for old, new in STABLELM_RENAMES.items():
            fields[new] = fields.pop(old)
    return fields


def text_config(fields: Mapping[str, Any], model_type: str, path: Path) -> Any:
    """A native transformers config of ``model_type`` from ``fields``."""
    from transformers import AutoConfig
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    if model_type not in CONFIG_MAPPING:
        raise HarnessError(
            f"checkpoint {path}: language model type '{model_type}' has no native transformers class "
            f"(it would need the repository's remote code), so it is not supported"
        )
    missing = [name for name in REQUIRED_FIELDS if name not in fields]
    if missing:
        raise HarnessError(
            f"checkpoint {path}: the {model_type} language-model config lacks {', '.join(missing)}"
        )
    data = {k: v for k, v in fields.items() if k != "model_type"}
    try:
        return AutoConfig.for_model(model_type, **data)
    except (ValueError, TypeError) as exc:
        raise HarnessError(f"checkpoint {path}: invalid {model_type} language-model config: {first_line(exc)}") from exc


def meta_causal_lm(config: Any) -> torch.nn.Module:
    """The native causal LM of ``config`` on the meta device (shapes only)."""
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM

    with init_empty_weights():
        return AutoModelForCausalLM.from_config(config)


def prepare_text(part: Part, config: Any, path: Path) -> torch.Tensor | None:
    """Check the LM tensors against ``config``; returns the trained ``lm_head.bias`` (removed), if any.

    A Phi-style head whose bias is absent (legacy TinyLLaVA's bias-free head) gets none: zero.
    A tied head uses the embedding, so a stored ``lm_head.weight`` is dropped.
    """
    model = meta_causal_lm(config)
    expected = module_shapes(model)
    tied = bool(getattr(config, "tie_word_embeddings", False))
    if tied:
        expected.pop("lm_head.weight", None)
        stored = part.pop("lm_head.weight")
        embed = part.tensors.get("model.embed_tokens.weight")
        if stored is not None and embed is not None and stored.shape != embed.shape:
            raise HarnessError(
                f"checkpoint {path}: tensor lm_head.weight has shape {list(stored.shape)} but the tied "
                f"embedding has {list(embed.shape)}"
            )
    for key in [k for k in part.tensors if k.endswith("rotary_emb.inv_freq")]:
        part.pop(key)
    has_bias_slot = "lm_head.bias" in expected
    if has_bias_slot and "lm_head.bias" not in part.tensors:
        expected.pop("lm_head.bias")
    check_part(part, expected, f"{config.model_type} language model", path)
    bias = part.pop("lm_head.bias")
    return bias if bias is not None and bool(bias.any()) else None


def materialize_causal_lm(config: Any, part: Part, path: Path) -> torch.nn.Module:
    """The native causal LM of ``config`` holding ``part``'s tensors in float32 (for merging LoRA).

    A missing Phi ``lm_head.bias`` is zero-filled; a tied head shares the embedding.
    """
    model = meta_causal_lm(config)
    expected = module_shapes(model)
    tensors = Part({k: v.float() for k, v in part.tensors.items()}, dict(part.origin))
    tied = bool(getattr(config, "tie_word_embeddings", False))
    if tied:
        expected.pop("lm_head.weight", None)
        tensors.pop("lm_head.weight")
    if "lm_head.bias" in expected and "lm_head.bias" not in tensors.tensors:
        tensors.put("lm_head.bias", torch.zeros(expected["lm_head.bias"]), "lm_head.bias (zero-filled)")
    for key in [k for k in tensors.tensors if k.endswith("rotary_emb.inv_freq")]:
        tensors.pop(key)
    check_part(tensors, expected, f"{config.model_type} language model", path)
    model.load_state_dict(tensors.tensors, strict=False, assign=True)
    if tied:
        model.get_output_embeddings().weight = model.get_input_embeddings().weight
    return model.eval()
