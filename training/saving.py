"""Writing checkpoints: an HF Llava directory that the ``tinyllava`` adapter, plain transformers
(``LlavaForConditionalGeneration`` + ``AutoProcessor``) and lmms-eval's ``llava_hf`` load.

The directory holds the weights under the HF Llava names of transformers 4.36+ (``language_model.model.*``,
``language_model.lm_head.weight``, ``vision_tower.vision_model.*``, ``multi_modal_projector.*``), which every
transformers release since loads whatever its in-memory module layout; ``config.json`` with ``conv_mode`` /
``image_aspect_ratio`` and a ``tinyllava_training`` record (stage, step); the tokenizer with ``<image>``, the
image processor and a ``LlavaProcessor`` with the LLaVA chat template. Extras:

- connector-only stages also write LLaVA's small ``mm_projector.bin`` (``model.mm_projector.{0,2}.*``);
- LoRA runs write the merged model at the top and the adapter (+ the other trainable tensors, for resuming)
  under ``lora_adapter/``;
- a trained ``lm_head.bias`` (Phi) goes to ``lm_head_bias.safetensors``, which the adapter re-attaches.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from model_adapters.formats.runtime import LM_HEAD_BIAS_FILE, LM_HEAD_BIAS_KEY, llava_parts

PROJECTOR_FILE = "mm_projector.bin"
LORA_DIR = "lora_adapter"
NON_LORA_FILE = "non_lora_trainables.safetensors"
RECIPE_FILE = "training_recipe.json"
PEFT_PREFIX = "base_model.model."
# Checkpoint names of the Llava parts (transformers 4.36+ on disk; older and newer releases both load them).
TEXT, HEAD = "language_model.model.", "language_model.lm_head."
VISION, PROJECTOR = "vision_tower.", "multi_modal_projector."
HEAD_BIAS = HEAD + "bias"


def _module_prefix(model: Any, module: torch.nn.Module) -> str:
    for name, candidate in model.named_modules():
        if candidate is module:
            return f"{name}." if name else ""
    raise ValueError(f"{type(module).__name__} is not part of {type(model).__name__}")


def _part_prefixes(model: Any) -> list[tuple[str, str]]:
    """(in-memory prefix, checkpoint prefix) of each Llava part of ``model``, whatever the module layout."""
    parts = llava_parts(model)
    pairs = [(parts.text, TEXT), (parts.head, HEAD), (parts.vision, VISION), (parts.projector, PROJECTOR)]
    return [(_module_prefix(model, module), saved) for module, saved in pairs]


def _vision_key(rest: str) -> str:
    """Vision-tower names with ``vision_model.`` (transformers 5 keeps SigLIP/CLIP towers flat in memory)."""
    return rest if rest.startswith("vision_model.") else f"vision_model.{rest}"


def _saved_name(prefixes: list[tuple[str, str]], tied: bool, key: str) -> str | None:
    """The checkpoint name of the in-memory tensor ``key`` (None for a tied LM head, which is not saved)."""
    match = next(((memory, saved) for memory, saved in prefixes if key.startswith(memory)), None)
    if match is None:
        raise KeyError(f"{key} belongs to no part of the Llava model")
    memory, saved = match
    rest = key[len(memory) :]
    if saved == HEAD and tied and rest == "weight":
        return None
    return saved + (_vision_key(rest) if saved == VISION else rest)


def _is_tied(model: Any) -> bool:
    return bool(getattr(model.config.text_config, "tie_word_embeddings", False))


def checkpoint_names(model: Any, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` (in-memory names of the Llava ``model``) under the checkpoint names."""
    prefixes, tied = _part_prefixes(model), _is_tied(model)
    named = ((_saved_name(prefixes, tied, key), value) for key, value in state.items())
    return {name: value for name, value in named if name is not None}


def load_saved_weights(model: Any, folder: Path) -> None:
    """Put the weights :func:`save_checkpoint` wrote in ``folder`` back into the Llava ``model`` (resuming);
    the saved tensors and the model's must match one to one."""
    from safetensors.torch import load_file

    from model_adapters.formats.tensors import read_weights

    prefixes, tied = _part_prefixes(model), _is_tied(model)
    wanted = {}
    for key in model.state_dict():
        name = _saved_name(prefixes, tied, key)
        if name is not None:
            wanted[name] = key
    saved = dict(read_weights(folder))
    if (folder / LM_HEAD_BIAS_FILE).is_file():
        saved[HEAD_BIAS] = load_file(str(folder / LM_HEAD_BIAS_FILE))[LM_HEAD_BIAS_KEY]
    missing, unexpected = sorted(set(wanted) - set(saved)), sorted(set(saved) - set(wanted))
    if missing or unexpected:
        raise ValueError(f"{folder} does not fit the model: missing {missing[:3]}, unexpected {unexpected[:3]}")
    model.load_state_dict({wanted[name]: tensor for name, tensor in saved.items()}, strict=False)


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
    named = checkpoint_names(base, state)
    bias = named.pop(HEAD_BIAS, None)
    if bias is not None:
        from safetensors.torch import save_file

        save_file({LM_HEAD_BIAS_KEY: bias.float().contiguous().cpu()}, str(out / LM_HEAD_BIAS_FILE))
    write_weights(base, named, out)
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


def write_weights(model: Any, named: Mapping[str, torch.Tensor], out: Path) -> None:
    """Weights (checkpoint names; sharded when large), ``config.json`` and the generation config of ``model``."""
    from model_adapters.convert import save_weights

    save_weights(out, {k: v.detach().cpu() for k, v in named.items()})
    config = copy.deepcopy(model.config)
    config.architectures = [type(model).__name__]
    config.save_pretrained(out)
    floats = [v.dtype for v in named.values() if v.is_floating_point()]
    if floats:
        set_config_dtype(out, floats[0])
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.save_pretrained(out)


def set_config_dtype(folder: Path, dtype: torch.dtype) -> None:
    """Record the weights' dtype in ``config.json`` (``dtype`` from transformers 4.56 on, ``torch_dtype`` before)."""
    path = folder / "config.json"
    data = json.loads(path.read_text())
    key = "torch_dtype" if "torch_dtype" in data and "dtype" not in data else "dtype"
    _update_config_file(path, {key: str(dtype).removeprefix("torch.")})


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
