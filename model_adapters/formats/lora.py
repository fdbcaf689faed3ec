"""Merging a PEFT LoRA adapter into a module, as the original loaders do (``merge_and_unload``)."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from harness.errors import HarnessError
from model_adapters.formats.tensors import first_line, read_tensor_file

ADAPTER_FILES = ("adapter_model.safetensors", "adapter_model.bin")


def adapter_file(directory: Path) -> Path:
    for name in ADAPTER_FILES:
        if (directory / name).is_file():
            return directory / name
    raise HarnessError(f"LoRA checkpoint {directory} has adapter_config.json but no {' or '.join(ADAPTER_FILES)}")


def merge_lora(module: torch.nn.Module, directory: Path) -> torch.nn.Module:
    """``module`` with the LoRA adapter of ``directory`` merged into its weights.

    The adapter's names must match ``module``'s (the caller builds it with the original's module names);
    adapter tensors that match nothing, and targeted layers without adapter tensors, are errors.
    """
    try:
        from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
    except ImportError as exc:
        raise HarnessError("merging a LoRA checkpoint needs peft: pip install peft") from exc

    try:
        config = LoraConfig.from_pretrained(str(directory))
    except (OSError, ValueError, TypeError) as exc:
        raise HarnessError(f"cannot read {directory / 'adapter_config.json'}: {first_line(exc)}") from exc
    config.task_type = None  # a plain PeftModel: merging needs no task head
    config.inference_mode = True
    weights = {k: v.float() for k, v in read_tensor_file(adapter_file(directory)).items()}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # peft calls deprecated transformers helpers
            peft_model = get_peft_model(module, config)
    except ValueError as exc:  # e.g. target modules not found
        raise HarnessError(f"LoRA adapter {directory} does not fit the model: {first_line(exc)}") from exc
    result = set_peft_model_state_dict(peft_model, weights)
    unexpected = sorted(result.unexpected_keys)
    missing = sorted(k for k in result.missing_keys if "lora_" in k)
    if unexpected or missing:
        shown = ", ".join((unexpected or missing)[:3])
        problem = "adapter tensors match no layer" if unexpected else "targeted layers have no adapter tensors"
        raise HarnessError(f"LoRA adapter {directory}: {len(unexpected or missing)} {problem}, e.g. {shown}")
    return peft_model.merge_and_unload()
