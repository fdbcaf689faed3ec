"""Every TinyLLaVA checkpoint format, detected from its files and config, read into one in-memory form.

| format          | recognised by                                                    |
|-----------------|------------------------------------------------------------------|
| hf_llava        | architectures LlavaForConditionalGeneration / model_type llava   |
| legacy          | TinyLlava{Phi,Stablelm,Llama}ForCausalLM, LlavaPhiForCausalLM /  |
|                 | model_type tiny_llava, tiny_llava_phi, tiny_llava_stablelm, llava_phi |
| factory         | TinyLlavaForConditionalGeneration / model_type tinyllava         |
| projector-only  | a legacy config + mm_projector.bin and no model weights (base=)  |
| lora            | adapter_config.json (legacy: base=; Factory: stage directories)  |

Dispatch uses ``architectures`` first (the pre-June-2024 TinyLLaVA-1.5B says model_type ``tinyllava`` but
is legacy), then ``model_type``; never substrings of a directory name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from model_adapters.formats import factory, legacy, partial
from model_adapters.formats.converted import Converted
from model_adapters.formats.tensors import first_line, read_weights, weight_files

FORMATS = {
    "hf_llava": "HF Llava",
    "legacy": "legacy TinyLLaVABench",
    "factory": "TinyLLaVA Factory",
    "projector-only": "projector-only (mm_projector.bin on a base)",
    "lora": "LoRA (merged on load)",
}
HF_LLAVA_ARCHITECTURES = {"LlavaForConditionalGeneration"}
ORIGINAL_LLAVA_ARCHITECTURES = {"LlavaLlamaForCausalLM", "LlavaMistralForCausalLM", "LlavaMptForCausalLM"}
SUPPORTED_MODEL_TYPES = ("llava", *legacy.MODEL_TYPES, factory.MODEL_TYPE)

__all__ = ["FORMATS", "Converted", "Detected", "detect", "load"]


@dataclass(frozen=True)
class Detected:
    """A checkpoint's format, the layout of its config (hf_llava, legacy, factory) and that config."""

    path: Path
    format: str
    layout: str
    family: str | None  # legacy language-model family
    config: dict[str, Any]


def read_config(path: Path) -> dict[str, Any]:
    file = path / "config.json"
    try:
        data = json.loads(file.read_text())
    except FileNotFoundError:
        raise HarnessError(f"{file} not found: not a Hugging Face checkpoint directory") from None
    except (OSError, ValueError) as exc:
        raise HarnessError(f"cannot read {file}: {first_line(exc)}") from exc
    if not isinstance(data, dict):
        raise HarnessError(f"{file} is not a JSON object")
    return data


def config_layout(config: dict[str, Any], path: Path) -> tuple[str, str | None]:
    """(layout, legacy family) from ``architectures``, else ``model_type``."""
    for arch in config.get("architectures") or ():
        if arch in legacy.ARCHITECTURES:
            return "legacy", legacy.ARCHITECTURES[arch]
        if arch in factory.ARCHITECTURES:
            return "factory", None
        if arch in HF_LLAVA_ARCHITECTURES:
            return "hf_llava", None
        if arch in ORIGINAL_LLAVA_ARCHITECTURES:
            raise HarnessError(
                f"checkpoint {path} is an original LLaVA checkpoint ({arch}), which is not supported; "
                f"supported model_type values: {', '.join(SUPPORTED_MODEL_TYPES)}"
            )
    model_type = str(config.get("model_type", ""))
    if model_type in legacy.MODEL_TYPES:
        return "legacy", legacy.MODEL_TYPES[model_type]
    if model_type == factory.MODEL_TYPE:
        return "factory", None
    if model_type == "llava":
        return "hf_llava", None
    raise HarnessError(
        f"checkpoint {path} has model_type '{model_type}', which the tinyllava adapter does not load; "
        f"supported model_type values: {', '.join(SUPPORTED_MODEL_TYPES)}"
    )


def detect(path: Path) -> Detected:
    """The format of the checkpoint directory ``path``."""
    config = read_config(path)
    layout, family = config_layout(config, path)
    if (path / "adapter_config.json").is_file():
        if layout == "hf_llava":
            raise HarnessError(f"checkpoint {path}: LoRA adapters on HF Llava checkpoints are not supported")
        return Detected(path, "lora", layout, family, config)
    if (path / partial.PROJECTOR_FILE).is_file() and not weight_files(path) and layout != "factory":
        if layout != "legacy":
            raise HarnessError(f"checkpoint {path}: a projector-only checkpoint needs a legacy TinyLLaVA config.json")
        return Detected(path, "projector-only", layout, family, config)
    return Detected(path, layout, layout, family, config)


def load(path: Path, detected: Detected, base: str | None = None, tower: str | None = None) -> Converted:
    """Read a non-HF-Llava checkpoint (``base``/``tower``: ``--model-args`` paths) into a :class:`Converted`."""
    fmt, config = detected.format, detected.config
    if base and fmt not in ("projector-only", "lora"):
        raise HarnessError(
            f"--model-args base= applies to projector-only and LoRA checkpoints; {path} is {FORMATS[fmt]}"
        )
    if fmt == "projector-only":
        return partial.convert_projector_only(path, config, str(detected.family), base, tower)
    if fmt == "lora" and detected.layout == "legacy":
        return partial.convert_legacy_lora(path, config, str(detected.family), base, tower)
    if fmt == "lora":
        return partial.convert_factory_lora(path, config, base, tower)
    if fmt == "legacy":
        source = legacy.LegacySource(
            path=path,
            config=config,
            family=str(detected.family),
            tensors=read_weights(path),
            tokenizer_dirs=[path],
            sources={"checkpoint": path},
            tower_arg=tower,
        )
        return legacy.convert_legacy(source)
    if fmt == "factory":
        source_f = factory.FactorySource(
            path=path,
            config=config,
            tensors=factory.factory_tensors(path),
            tokenizer_dirs=[path, path / "language_model"],
            sources={"checkpoint": path},
            tower_arg=tower,
        )
        return factory.convert_factory(source_f)
    raise HarnessError(f"checkpoint {path} is {FORMATS[fmt]}; it loads directly, not through a conversion")

