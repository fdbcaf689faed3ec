"""Writing checkpoints: an HF Llava directory that the ``tinyllava`` adapter, plain transformers
(``LlavaForConditionalGeneration`` + ``AutoProcessor``) and lmms-eval's ``llava_hf`` load.

The directory holds the weights, ``config.json`` with ``conv_mode`` / ``image_aspect_ratio`` and a
``tinyllava_training`` record (stage, step), the tokenizer with ``<image>``, the image processor and a
``LlavaProcessor`` with the LLaVA chat template. Extras:

- connector-only stages also write LLaVA's small ``mm_projector.bin`` (``model.mm_projector.{0,2}.*``);
- LoRA runs write the merged model at the top and the adapter (+ the other trainable tensors, for resuming)
  under ``lora_adapter/``;
- a trained ``lm_head.bias`` (Phi) goes to ``lm_head_bias.safetensors``, which the adapter re-attaches.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from model_adapters.formats.runtime import LM_HEAD_BIAS_FILE, LM_HEAD_BIAS_KEY

PROJECTOR_FILE = "mm_projector.bin"
LORA_DIR = "lora_adapter"
NON_LORA_FILE = "non_lora_trainables.safetensors"
RECIPE_FILE = "training_recipe.json"
PEFT_PREFIX = "base_model.model."


def projector_state(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The connector under LLaVA's ``mm_projector.bin`` names (``linear_1`` -> ``0``, ``linear_2`` -> ``2``)."""
    names = {"linear_1": "0", "linear_2": "2"}
    out = {}
    for key, value in state.items():
        if "multi_modal_projector." in key:
            layer, rest = key.split("multi_modal_projector.", 1)[1].split(".", 1)
            out[f"model.mm_projector.{names[layer]}.{rest}"] = value.detach().cpu().clone()
    return out


def lora_scaling(peft_model: Any) -> float:
    """LoRA's ``alpha / r`` (``alpha / sqrt(r)`` with rsLoRA) of the default adapter."""
    config = peft_model.peft_config["default"]
    return config.lora_alpha / (config.r**0.5 if config.use_rslora else config.r)


def merge_lora_state(state: Mapping[str, torch.Tensor], scaling: float) -> dict[str, torch.Tensor]:
    """A PEFT model's state dict as the base model's, each LoRA delta merged: ``W + scaling * B @ A``."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        name = key.removeprefix(PEFT_PREFIX)
        if ".lora_" not in name:
            out[name.replace(".base_layer.", ".")] = value
    for key, a in state.items():
        if ".lora_A.default.weight" not in key:
            continue
        stem = key.split(".lora_A.default.weight")[0]
        b = state[f"{stem}.lora_B.default.weight"]
        target = f"{stem.removeprefix(PEFT_PREFIX)}.weight"
        if target not in out:
            raise KeyError(f"the base weight of {stem} is not in the state dict")
        base = out[target]
        out[target] = (base.float() + scaling * (b.float() @ a.float())).to(base.dtype)
    return out


def _is_peft(model: Any) -> bool:
    return hasattr(model, "peft_config") and hasattr(model, "get_base_model")


def _update_config_file(path: Path, extra: Mapping[str, Any]) -> None:
    data = json.loads(path.read_text())
    data.update(extra)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def save_checkpoint(
    model: Any,
    tokenizer: Any,
    image_processor: Any,
    out: str | Path,
    *,
    conv_mode: str,
    image_aspect_ratio: str,
    training: Mapping[str, Any],
    connector_only: bool = False,
    state_dict: Mapping[str, torch.Tensor] | None = None,
    recipe: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``model`` (a Llava model or a PEFT wrapper of one; ``state_dict`` when DeepSpeed gathered it)."""
    from model_adapters.llava_processor import attach_llava_processor

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    state = dict(state_dict) if state_dict else model.state_dict()
    base = model.get_base_model() if _is_peft(model) else model
    if _is_peft(model):
        _save_lora_parts(model, state, out / LORA_DIR)
        state = merge_lora_state(state, lora_scaling(model))
    bias = state.pop(LM_HEAD_BIAS_KEY, None)
    if bias is not None:
        from safetensors.torch import save_file

        save_file({LM_HEAD_BIAS_KEY: bias.float().contiguous().cpu()}, str(out / LM_HEAD_BIAS_FILE))
    base.save_pretrained(out, state_dict=state)
    if connector_only:
        torch.save(projector_state(state), out / PROJECTOR_FILE)
    tokenizer.save_pretrained(out)
    image_processor.save_pretrained(out)
    _update_config_file(
        out / "config.json",
        {"conv_mode": conv_mode, "image_aspect_ratio": image_aspect_ratio, "tinyllava_training": dict(training)},
    )
    attach_llava_processor(out)
    if recipe is not None:
        (out / RECIPE_FILE).write_text(json.dumps(dict(recipe), indent=2, sort_keys=True, default=str) + "\n")
    return out


def _save_lora_parts(model: Any, state: Mapping[str, torch.Tensor], folder: Path) -> None:
    """The PEFT adapter, and the other trainable tensors (connector, tower layers) for resuming."""
    from safetensors.torch import save_file

    model.save_pretrained(folder, state_dict=dict(state))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad and ".lora_" not in n}
    extra = {n: state[n].detach().cpu().contiguous() for n in trainable if n in state}
    if extra:
        save_file(extra, str(folder / NON_LORA_FILE))


def load_lora_parts(model: Any, folder: Path) -> None:
    """Restore what :func:`_save_lora_parts` wrote into a PEFT model (resuming a LoRA run)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    adapter = folder / "adapter_model.safetensors"
    set_peft_model_state_dict(model, load_file(str(adapter)))
    if (folder / NON_LORA_FILE).is_file():
        result = model.load_state_dict(load_file(str(folder / NON_LORA_FILE)), strict=False)
        if result.unexpected_keys:
            raise ValueError(f"{folder / NON_LORA_FILE}: tensors the model lacks: {result.unexpected_keys[:3]}")
