"""The Llava runtime: building ``LlavaForConditionalGeneration`` from a :class:`Converted`, the lm_head bias
that plain Llava lacks, and the parts of a Llava model under their native names."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from harness.errors import HarnessError
from model_adapters.formats.converted import Converted
from model_adapters.formats.tensors import Tensors, read_tensor_file

LM_HEAD_BIAS_FILE = "lm_head_bias.safetensors"
LM_HEAD_BIAS_KEY = "lm_head.bias"
SOURCE_FORMAT_KEY = "tinyllava_source_format"  # in a converted checkpoint's config.json: the format it came from


@dataclass
class LlavaParts:
    """A Llava model's text model (no head), LM head, vision tower and projector modules."""

    text: torch.nn.Module
    head: torch.nn.Module
    vision: torch.nn.Module
    projector: torch.nn.Module


def llava_parts(model: Any) -> LlavaParts:
    """The parts of ``model`` (transformers >= 4.52 nests them under ``model.model``; earlier versions not)."""
    inner = getattr(model, "model", None)
    if inner is not None and hasattr(inner, "language_model"):
        return LlavaParts(inner.language_model, model.get_output_embeddings(), inner.vision_tower,
                          inner.multi_modal_projector)
    return LlavaParts(model.language_model.model, model.get_output_embeddings(), model.vision_tower,
                      model.multi_modal_projector)


def origin_format(fmt: str, config: Mapping[str, Any]) -> str:
    """The format a checkpoint's weights come from: its own, or for an HF Llava folder that ``convert`` wrote, the
    format recorded in its ``config.json``."""
    return str(config.get(SOURCE_FORMAT_KEY) or fmt) if fmt == "hf_llava" else fmt


def converted_from_original(config: Mapping[str, Any]) -> bool:
    """Whether an HF Llava ``config.json`` was written by ``convert`` from an original TinyLLaVA checkpoint."""
    return origin_format("hf_llava", config) != "hf_llava"


def embedding_carries_input_scale(model: Any) -> bool:
    """Whether the runtime scales token embeddings in the embedding module (Gemma in transformers 5), so that
    embeddings passed in as ``inputs_embeds`` are not scaled again."""
    return getattr(model.get_input_embeddings(), "embed_scale", None) is not None


def scale_image_features_as_transformers_4(model: Any) -> bool:
    """Give image features the factor TinyLLaVA's Gemma models applied to them; True when the runtime needs it.

    The originals ran under transformers 4.x, whose Gemma multiplies its whole ``inputs_embeds`` by
    ``torch.tensor(hidden_size ** 0.5, dtype)`` (``GemmaModel.forward`` in 4.40.1, TinyLLaVA Factory's pin), the
    spliced image features included. Transformers 5 applies that factor in the token embedding
    (``embed_scale``) instead, so Llava's image features would reach the layers without it. Where the runtime's
    token embedding carries the factor, the projector's output is multiplied by it, in the output's dtype as
    4.x does; elsewhere (4.x) nothing changes. Only for checkpoints that come from such an original (the
    adapter: formats converted in memory and folders ``convert`` wrote from them; ``training``: ``init_from`` those).
    """
    if not embedding_carries_input_scale(model):
        return False
    root = float(model.config.text_config.hidden_size) ** 0.5

    def scaled(module: torch.nn.Module, args: Any, output: torch.Tensor) -> torch.Tensor:
        return output * torch.tensor(root, dtype=output.dtype, device=output.device)

    llava_parts(model).projector.register_forward_hook(scaled)
    return True


def _dtype_kwarg(dtype: torch.dtype) -> dict[str, torch.dtype]:
    import transformers

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return {"dtype" if (major, minor) >= (4, 56) else "torch_dtype": dtype}


def _load(module: torch.nn.Module, tensors: Tensors, dtype: torch.dtype, what: str) -> None:
    cast = {k: v.to(dtype) if v.is_floating_point() else v for k, v in tensors.items()}
    result = module.load_state_dict(cast, strict=False, assign=True)
    problems = list(result.missing_keys) + list(result.unexpected_keys)
    if problems:
        raise HarnessError(f"the converted {what} does not fit the Llava model: {', '.join(problems[:4])}")


def build_model(converted: Converted, dtype: torch.dtype, attn: str, device: str, with_bias: bool = True) -> Any:
    """``LlavaForConditionalGeneration`` holding the converted weights, in eval mode on ``device``.

    With ``with_bias`` a stored lm_head bias is re-attached (see :func:`attach_lm_head_bias`).
    """
    from accelerate import init_empty_weights
    from transformers import LlavaForConditionalGeneration

    config = copy.deepcopy(converted.config)
    with init_empty_weights():
        model = LlavaForConditionalGeneration._from_config(config, attn_implementation=attn, **_dtype_kwarg(dtype))
    parts = llava_parts(model)
    text = converted.text.tensors
    base = {k.removeprefix("model."): v for k, v in text.items() if k.startswith("model.")}
    _load(parts.text, base, dtype, "language model")
    tied = bool(getattr(config.text_config, "tie_word_embeddings", False))
    if tied:
        parts.head.weight = parts.text.get_input_embeddings().weight
    else:
        _load(parts.head, {"weight": text["lm_head.weight"]}, dtype, "LM head")
    _load(parts.vision, converted.vision.tensors, dtype, "vision tower")
    _load(parts.projector, converted.projector.tensors, dtype, "projector")
    left = [name for name, p in model.named_parameters() if p.device.type == "meta"]
    if left:
        raise HarnessError(f"the converted checkpoint leaves {len(left)} weight(s) unset, e.g. {left[0]}")
    if with_bias and converted.lm_head_bias is not None:
        attach_lm_head_bias(model, converted.lm_head_bias)
    return model.to(device).eval()


def attach_lm_head_bias(model: Any, bias: torch.Tensor) -> None:
    """Replace Llava's bias-free LM head by a Linear with ``bias`` (the same weight), so logits equal the
    original's (a trained Phi bias; masked rows the original does not have)."""
    head = model.get_output_embeddings()
    if tuple(bias.shape) != (head.out_features,):
        raise HarnessError(
            f"{LM_HEAD_BIAS_KEY} has shape {list(bias.shape)} but the LM head has {head.out_features} rows"
        )
    new = torch.nn.Linear(head.in_features, head.out_features, bias=True, device="meta")
    new.weight = head.weight
    new.bias = torch.nn.Parameter(bias.to(head.weight.device, head.weight.dtype), requires_grad=False)
    model.set_output_embeddings(new)


def read_lm_head_bias(path: Path) -> torch.Tensor | None:
    """The bias a converted HF Llava checkpoint stores beside its weights (None when absent)."""
    file = path / LM_HEAD_BIAS_FILE
    if not file.is_file():
        return None
    tensors = read_tensor_file(file)
    if LM_HEAD_BIAS_KEY not in tensors:
        raise HarnessError(f"{file} has no '{LM_HEAD_BIAS_KEY}' tensor")
    return tensors[LM_HEAD_BIAS_KEY]


def checkpoint_state(model: Any) -> Tensors:
    """The model's weights under the HF Llava checkpoint names of transformers 4.36+ (``language_model.model.*``,
    ``language_model.lm_head.weight``, ``vision_tower.vision_model.*``, ``multi_modal_projector.*``), which
    every transformers release since loads."""
    parts = llava_parts(model)
    state: Tensors = {f"language_model.model.{k}": v for k, v in parts.text.state_dict().items()}
    if not getattr(model.config.text_config, "tie_word_embeddings", False):
        state["language_model.lm_head.weight"] = parts.head.weight
    for key, value in parts.vision.state_dict().items():
        name = key if key.startswith("vision_model.") else f"vision_model.{key}"
        state[f"vision_tower.{name}"] = value
    state.update({f"multi_modal_projector.{k}": v for k, v in parts.projector.state_dict().items()})
    return {k: v.detach() for k, v in state.items()}
