"""Partial checkpoints on a base: projector-only (``mm_projector.bin``) and LoRA (``adapter_config.json``).

They follow the original loaders:

- projector-only (legacy): the base model's weights with the projector from ``mm_projector.bin``
  (tensors whose name contains ``mm_projector``, named from ``mm_projector.`` on); a tuned
  ``model.embed_tokens.weight`` saved beside it is applied too; config from the checkpoint, tokenizer from
  the base.
- LoRA (legacy): the base's weights, then ``non_lora_trainables.bin`` (``base_model.`` stripped, then
  ``model.`` when names start with ``model.model.``), then the LoRA adapter merged into the language model.
- LoRA (Factory): the stage directories hold the base weights (``.base_layer`` removed); the adapter is
  merged into ``language_model``/``connector`` as named in the Factory model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from harness.errors import HarnessError
from model_adapters.formats import factory, legacy
from model_adapters.formats.converted import Converted, Part
from model_adapters.formats.llm import legacy_text_fields, materialize_causal_lm, text_config
from model_adapters.formats.lora import merge_lora
from model_adapters.formats.tensors import Tensors, read_tensor_file, read_weights

PROJECTOR_FILE = "mm_projector.bin"
NON_LORA_FILE = "non_lora_trainables.bin"
EMBED_KEY = "model.embed_tokens.weight"


def require_base(base: str | None, path: Path, kind: str) -> Path:
    if not base:
        raise HarnessError(f"checkpoint {path} is a {kind} checkpoint; pass its base model with --model-args base=PATH")
    directory = Path(base).expanduser()
    if not directory.is_dir():
        raise HarnessError(f"--model-args base={base} is not a directory")
    return directory.resolve()


def projector_tensors(path: Path) -> Tensors:
    """``mm_projector.bin`` under legacy names (``model.mm_projector.*``, plus a tuned embedding)."""
    saved = read_tensor_file(path / PROJECTOR_FILE)
    picked = {
        legacy.PROJECTOR_PREFIX + key.split("mm_projector.", 1)[1]: value
        for key, value in saved.items()
        if "mm_projector." in key
    }
    if not picked:
        raise HarnessError(f"{path / PROJECTOR_FILE} holds no mm_projector tensors")
    if EMBED_KEY in saved:
        picked[EMBED_KEY] = saved[EMBED_KEY]
    return picked


def convert_projector_only(
    path: Path, config: dict[str, Any], family: str, base: str | None, tower: str | None
) -> Converted:
    base_dir = require_base(base, path, "projector-only")
    tensors = {k: v for k, v in read_weights(base_dir).items() if not k.startswith(legacy.PROJECTOR_PREFIX)}
    tensors.update(projector_tensors(path))
    source = legacy.LegacySource(
        path=path,
        config=config,
        family=family,
        tensors=tensors,
        tokenizer_dirs=[base_dir, path],
        sources={"checkpoint": path, "base": base_dir},
        tower_arg=tower,
        format="projector-only",
    )
    return legacy.convert_legacy(source)


def non_lora_tensors(path: Path) -> Tensors:
    """``non_lora_trainables.bin`` with the legacy loader's prefix handling ({} when absent)."""
    file = path / NON_LORA_FILE
    if not file.is_file():
        return {}
    saved = {k.removeprefix("base_model."): v for k, v in read_tensor_file(file).items()}
    if any(k.startswith("model.model.") for k in saved):
        saved = {k.removeprefix("model."): v for k, v in saved.items()}
    return saved


def convert_legacy_lora(
    path: Path, config: dict[str, Any], family: str, base: str | None, tower: str | None
) -> Converted:
    base_dir = require_base(base, path, "LoRA")
    tensors = read_weights(base_dir)
    tensors.update(non_lora_tensors(path))
    text_cfg = text_config(legacy_text_fields(config, family), family, path)
    language_model = materialize_causal_lm(text_cfg, legacy.language_model_tensors(tensors), path)
    merged = merge_lora(language_model, path).state_dict()
    tensors.update({k: v for k, v in merged.items() if not k.endswith("rotary_emb.inv_freq")})
    source = legacy.LegacySource(
        path=path,
        config=config,
        family=family,
        tensors=tensors,
        tokenizer_dirs=[base_dir, path],
        sources={"checkpoint": path, "base": base_dir},
        tower_arg=tower,
        format="lora",
        notes=[] if (path / NON_LORA_FILE).is_file() else [f"no {NON_LORA_FILE}: projector from the base"],
    )
    return legacy.convert_legacy(source)


class _FactoryModules(torch.nn.Module):
    """The Factory model's ``language_model`` and ``connector._connector``, under its module names."""

    def __init__(self, language_model: torch.nn.Module, connector: torch.nn.Sequential) -> None:
        super().__init__()
        self.language_model = language_model
        self.connector = torch.nn.Module()
        self.connector._connector = connector


def _connector(tensors: Tensors) -> torch.nn.Sequential:
    prefix = factory.CONNECTOR_PREFIX
    weights = {k.removeprefix(prefix): v.float() for k, v in tensors.items() if k.startswith(prefix)}
    if "0.weight" not in weights or "2.weight" not in weights:
        raise HarnessError("the Factory connector weights (connector._connector.{0,2}.*) are missing")
    first, second = weights["0.weight"], weights["2.weight"]
    layers = torch.nn.Sequential(
        torch.nn.Linear(first.shape[1], first.shape[0]),
        torch.nn.GELU(),
        torch.nn.Linear(second.shape[1], second.shape[0]),
    )
    layers.load_state_dict(weights)
    return layers


def convert_factory_lora(path: Path, config: dict[str, Any], base: str | None, tower: str | None) -> Converted:
    if base:
        raise HarnessError(
            f"checkpoint {path} is a Factory LoRA checkpoint: its stage directories hold the base weights, "
            "so --model-args base= does not apply"
        )
    tensors = factory.stage_tensors(path, strip_base_layer=True)
    text_fields = factory.sub_config(config, "text_config", path, "language_model") or {}
    text_cfg = text_config(text_fields, str(text_fields.get("model_type", "")), path)
    language_model = materialize_causal_lm(text_cfg, Part.take(tensors, factory.LM_PREFIX), path)
    merged = merge_lora(_FactoryModules(language_model, _connector(tensors)), path).state_dict()
    tensors.update({k: v for k, v in merged.items() if not k.endswith("rotary_emb.inv_freq")})
    source = factory.FactorySource(
        path=path,
        config=config,
        tensors=tensors,
        tokenizer_dirs=[path],
        sources={"checkpoint": path},
        tower_arg=tower,
        format="lora",
    )
    return factory.convert_factory(source)
