"""TinyLLaVA Factory checkpoints (``model_type`` ``tinyllava``), single-file and stage layouts.

The original is ``language_model`` (a native causal LM), ``vision_tower._vision_tower`` (a native SigLIP or
CLIP model) and ``connector._connector`` (an mlp2x_gelu MLP). Its vision tower returns
``hidden_states[vision_feature_layer]`` and, for strategy ``patch``, always drops token 0, even for SigLIP,
which has no CLS token (728 tokens for a 384-pixel SigLIP image). The Llava runtime reproduces this with
the full tower, the same layer and strategy "default" (``cls_patch``: "full"). A Phi head keeps its
trained bias, which Llava's bias-free head cannot hold: it travels as ``Converted.lm_head_bias``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from model_adapters.formats import towers
from model_adapters.formats.assemble import (
    check_projector_type,
    llava_config,
    load_tokenizer,
    projector_part,
    recorded_template,
)
from model_adapters.formats.converted import Converted, Part, fit_vocabulary, image_token_id
from model_adapters.formats.llm import prepare_text, text_config
from model_adapters.formats.tensors import Tensors, read_tensor_file, read_weights, weight_files

ARCHITECTURES = {"TinyLlavaForConditionalGeneration"}
MODEL_TYPE = "tinyllava"
LM_PREFIX = "language_model."
TOWER_PREFIX = "vision_tower._vision_tower."
CONNECTOR_PREFIX = "connector._connector."
# Stage layout: sub-directory -> prefix of its keys in the single-file layout.
STAGE_DIRS = {"language_model": LM_PREFIX, "vision_tower": TOWER_PREFIX, "connector": "connector."}
# The Factory's documented conv_version per language-model family.
FAMILY_TEMPLATES = {
    "phi": "phi",
    "stablelm": "phi",
    "qwen2": "phi",
    "llama": "llama",
    "openelm": "llama",
    "gemma": "gemma",
}
# Factory template names -> ours (qwen2_base renders exactly like phi; qwen2_instruct stops at <|im_end|>).
TEMPLATE_ALIASES = {"qwen2_base": "phi", "qwen2_instruct": "qwen2"}
SELECT_STRATEGIES = {"patch": "default", "cls_patch": "full"}


@dataclass
class FactorySource:
    """What a Factory model is assembled from; ``tensors`` use the single-file key names."""

    path: Path
    config: dict[str, Any]
    tensors: Tensors
    tokenizer_dirs: list[Path]
    sources: dict[str, Path]
    tower_arg: str | None = None
    format: str = "factory"
    notes: list[str] = field(default_factory=list)


def is_stage_layout(path: Path) -> bool:
    """The ``language_model/ vision_tower/ connector/`` layout (used when no top-level weights exist)."""
    return (path / "language_model").is_dir() and not weight_files(path)


def stage_tensors(path: Path, strip_base_layer: bool = False) -> Tensors:
    """The three stage directories' weights under single-file names (``.base_layer`` removed for LoRA)."""
    tensors: Tensors = {}
    for directory, prefix in STAGE_DIRS.items():
        files = weight_files(path / directory) if (path / directory).is_dir() else []
        if not files:
            raise HarnessError(f"checkpoint {path} is missing {directory}/pytorch_model.bin (stage layout)")
        for file in files:
            for key, value in read_tensor_file(file).items():
                if strip_base_layer and "lora_" in key:
                    continue  # LoRA factors live in adapter_model.*
                name = key.replace(".base_layer", "") if strip_base_layer else key
                tensors[prefix + name] = value
    return tensors


def factory_tensors(path: Path) -> Tensors:
    return stage_tensors(path) if is_stage_layout(path) else read_weights(path)


def sub_config(config: Mapping[str, Any], key: str, path: Path, directory: str) -> dict[str, Any] | None:
    """``config[key]``, else the stage directory's config.json."""
    value = config.get(key)
    if isinstance(value, dict) and value:
        return dict(value)
    file = path / directory / "config.json"
    if file.is_file():
        return towers.read_tower_config(path / directory)
    return None


def factory_tower_config(source: FactorySource) -> dict[str, Any]:
    found = sub_config(source.config, "vision_config", source.path, "vision_tower")
    if found:
        return found
    if source.tower_arg:
        return towers.read_tower_config(Path(source.tower_arg).expanduser())
    name = str(source.config.get("vision_model_name_or_path") or "")
    if name in towers.KNOWN_TOWERS:
        return dict(towers.KNOWN_TOWERS[name])
    raise HarnessError(
        f"checkpoint {source.path}: config.json has no vision_config and the tower '{name}' is not known; "
        "pass --model-args tower=PATH (a directory with the tower's config.json)"
    )


def factory_template(config: Mapping[str, Any], family: str) -> str | None:
    return recorded_template(config, TEMPLATE_ALIASES) or FAMILY_TEMPLATES.get(family)


def aspect_ratio(config: Mapping[str, Any], path: Path) -> str:
    value = config.get("image_aspect_ratio") or "square"
    if value not in ("pad", "square"):
        raise HarnessError(f"checkpoint {path}: image_aspect_ratio '{value}' is not supported (pad, square)")
    return str(value)


def convert_factory(source: FactorySource) -> Converted:
    """A TinyLLaVA Factory model (see the module docstring) for the Llava runtime."""
    config, path = source.config, source.path
    check_projector_type(config.get("connector_type"), "connector_type", path)
    text_fields = sub_config(config, "text_config", path, "language_model")
    if not text_fields:
        raise HarnessError(
            f"checkpoint {path}: config.json has no text_config (the Factory would fetch "
            f"'{config.get('llm_model_name_or_path')}' from the hub)"
        )
    family = str(text_fields.get("model_type", ""))
    text_cfg = text_config(text_fields, family, path)
    text = Part.take(source.tensors, LM_PREFIX)
    bias = prepare_text(text, text_cfg, path)

    tower_cfg = factory_tower_config(source)
    vision_cfg = towers.vision_config(tower_cfg)
    vision = towers.prepare_vision(Part.take(source.tensors, TOWER_PREFIX), vision_cfg, path)
    selection = str(config.get("vision_feature_select_strategy", "patch"))
    if selection not in SELECT_STRATEGIES:
        raise HarnessError(f"checkpoint {path}: vision_feature_select_strategy '{selection}' is not supported")
    strategy = SELECT_STRATEGIES[selection]
    layer = int(config.get("vision_feature_layer", -2))
    projector = projector_part(source.tensors, CONNECTOR_PREFIX, text_cfg.hidden_size, vision_cfg.hidden_size, path)

    tokenizer, _ = load_tokenizer(source.tokenizer_dirs, path)
    tied = bool(getattr(text_cfg, "tie_word_embeddings", False))
    live = int(text_cfg.vocab_size)
    vocab = fit_vocabulary(text, tied, live, image_token_id(tokenizer), bias)
    text_cfg.vocab_size = vocab.rows
    kind = towers.tower_kind(tower_cfg)
    candidates = [path, path / "vision_tower"] + ([Path(source.tower_arg).expanduser()] if source.tower_arg else [])
    sources = dict(source.sources)
    if source.tower_arg:
        sources["tower"] = Path(source.tower_arg).expanduser().resolve()
    return Converted(
        format=source.format,
        config=llava_config(
            text_cfg, vision_cfg, vocab.image_token_id, layer, strategy, towers.image_tokens(vision_cfg, strategy)
        ),
        text=text,
        vision=vision,
        projector=projector,
        tokenizer=tokenizer,
        image_processor=towers.processor_settings(kind, vision_cfg.image_size, candidates),
        template=factory_template(config, family),
        image_aspect_ratio=aspect_ratio(config, path),
        sources=sources,
        lm_head_bias=vocab.bias,
        live_vocab=live,
        stored_vocab=vocab.stored,
        notes=list(source.notes),
    )
