"""Legacy TinyLLaVABench checkpoints (``tiny_llava``, ``tiny_llava_phi``, ``tiny_llava_stablelm``, ``llava_phi``).

The original model is a native causal LM with two extra children under ``model.``: ``mm_projector``
(an mlp2x_gelu MLP) and ``vision_tower.vision_tower`` (SigLIP or CLIP). How the original computes, and how
the Llava runtime reproduces it:

- SigLIP: the loader deletes the tower's last encoder layer and takes ``hidden_states[-1]`` of the rest
  (no post-layernorm, no token dropped): a tower one layer shorter, layer -1, strategy "full" (729 tokens
  for 384-pixel images). ``mm_vision_select_layer``/``_feature`` are ignored, as in the original.
- CLIP: ``hidden_states[mm_vision_select_layer]``, minus the CLS token for ``patch``: the same layer with
  strategy "default" (``cls_patch``: "full").
- The loader's ``resize_token_embeddings(len(tokenizer))`` cuts the padded vocabulary: every stored row
  is kept, rows past ``len(tokenizer)`` are masked by the lm_head bias; Phi's bias-free head is Phi with a
  zero bias.
- Images are padded to a square with the mean colour when ``image_aspect_ratio`` is ``pad``.
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
from model_adapters.formats.llm import legacy_text_fields, prepare_text, text_config
from model_adapters.formats.tensors import Tensors

# architectures / model_type -> language-model family (transformers model_type).
ARCHITECTURES = {
    "TinyLlavaPhiForCausalLM": "phi",
    "LlavaPhiForCausalLM": "phi",
    "TinyLlavaStablelmForCausalLM": "stablelm",
    "TinyLlavaLlamaForCausalLM": "llama",
}
MODEL_TYPES = {"tiny_llava_phi": "phi", "llava_phi": "phi", "tiny_llava_stablelm": "stablelm", "tiny_llava": "llama"}
# The documented conversation modes of the releases: 3.1B and 2.0B use "phi", 1.5B (TinyLlama) uses "v1".
DEFAULT_TEMPLATES = {"phi": "phi", "stablelm": "phi", "llama": "v1"}
TOWER_PREFIX = "model.vision_tower.vision_tower."
PROJECTOR_PREFIX = "model.mm_projector."
NOT_LM_PREFIXES = ("model.mm_projector.", "model.vision_tower.", "model.vision_resampler.")
IM_PATCH, IM_START, IM_END = "<im_patch>", "<im_start>", "<im_end>"


@dataclass
class LegacySource:
    """What a legacy model is assembled from (full checkpoints, or a partial one on its base)."""

    path: Path  # the directory with the legacy config.json
    config: dict[str, Any]
    family: str
    tensors: Tensors  # original names: model.*, lm_head.*
    tokenizer_dirs: list[Path]
    sources: dict[str, Path]
    tower_arg: str | None = None
    format: str = "legacy"
    notes: list[str] = field(default_factory=list)


def language_model_tensors(tensors: Mapping[str, Any]) -> Part:
    part = Part()
    for key, value in tensors.items():
        if (key.startswith("model.") and not key.startswith(NOT_LM_PREFIXES)) or key.startswith("lm_head."):
            part.put(key, value, key)
    return part


def aspect_ratio(config: Mapping[str, Any], path: Path) -> str:
    value = config.get("image_aspect_ratio") or "square"
    if value == "pad":
        return "pad"
    if value == "anyres":
        raise HarnessError(f"checkpoint {path}: image_aspect_ratio 'anyres' is not supported")
    return "square"  # LLaVA's process_images resizes every other value straight


def check_legacy_options(config: Mapping[str, Any], path: Path) -> None:
    check_projector_type(config.get("mm_projector_type", "linear"), "mm_projector_type", path)
    if config.get("mm_use_im_start_end"):
        raise HarnessError(f"checkpoint {path}: mm_use_im_start_end prompts are not supported")
    if config.get("mm_patch_merge_type", "flat") != "flat":
        raise HarnessError(f"checkpoint {path}: mm_patch_merge_type '{config['mm_patch_merge_type']}' is not supported")


def tower_directory(config: Mapping[str, Any], tower_arg: str | None) -> Path | None:
    """``--model-args tower=PATH``, else ``mm_vision_tower`` when it is a local directory."""
    if tower_arg:
        directory = Path(tower_arg).expanduser()
        if not directory.is_dir():
            raise HarnessError(f"--model-args tower={tower_arg} is not a directory")
        return directory.resolve()
    name = str(config.get("mm_vision_tower") or config.get("vision_tower") or "")
    local = Path(name).expanduser()
    return local.resolve() if name and local.is_dir() else None


def tower_config(config: Mapping[str, Any], directory: Path | None, path: Path) -> dict[str, Any]:
    if directory is not None:
        return towers.read_tower_config(directory)
    name = str(config.get("mm_vision_tower") or "")
    if name in towers.KNOWN_TOWERS:
        return dict(towers.KNOWN_TOWERS[name])
    raise HarnessError(
        f"checkpoint {path}: the vision tower '{name}' is not a local directory; pass "
        "--model-args tower=PATH (a directory with the tower's config.json)"
    )


def tower_tensors(source: LegacySource, directory: Path | None) -> tuple[Part, bool]:
    """The tower weights (in-checkpoint keys first, else the tower directory) and whether the
    directory supplied them."""
    inside = Part.take(source.tensors, TOWER_PREFIX)
    if inside.tensors:
        return inside.renamed({}), False
    if directory is not None and towers.has_tower_weights(directory):
        return Part.take(towers.tower_weights(directory), "", f"{directory.name}/"), True
    raise HarnessError(
        f"checkpoint {source.path}: no vision tower weights (no {TOWER_PREFIX}* tensors and no tower directory "
        "with weights); pass --model-args tower=PATH"
    )


def legacy_vocabulary(tokenizer: Any, config: Mapping[str, Any], vocab_size: int, notes: list[str]) -> int:
    """Output rows the original has: the loader adds its image tokens, then resizes to ``len(tokenizer)``."""
    if config.get("mm_use_im_patch_token", True):  # the loader's default when the field is absent
        tokenizer.add_tokens([IM_PATCH], special_tokens=True)
    live = len(tokenizer)
    if live > vocab_size:
        notes.append(
            f"the original loader grows the vocabulary from {vocab_size} to {live} with randomly initialised rows; "
            "those rows are masked here"
        )
        live = vocab_size
    return live


def convert_legacy(source: LegacySource) -> Converted:
    """A legacy TinyLLaVABench model (see the module docstring) for the Llava runtime."""
    config, path = source.config, source.path
    check_legacy_options(config, path)
    text_cfg = text_config(legacy_text_fields(config, source.family), source.family, path)
    text = language_model_tensors(source.tensors)
    bias = prepare_text(text, text_cfg, path)

    directory = tower_directory(config, source.tower_arg)
    tower_cfg = tower_config(config, directory, path)
    kind = towers.tower_kind(tower_cfg)
    part, from_directory = tower_tensors(source, directory)
    if kind == "siglip":
        full = towers.vision_config(tower_cfg).num_hidden_layers
        vision_cfg = towers.vision_config(tower_cfg, num_hidden_layers=full - 1)
        vision = towers.prepare_vision(part, vision_cfg, path, drop_layers_from=full - 1)
        layer, strategy = -1, "full"
        processor = towers.processor_settings(kind, vision_cfg.image_size, [])
    else:
        vision_cfg = towers.vision_config(tower_cfg)
        vision = towers.prepare_vision(part, vision_cfg, path)
        layer = int(config.get("mm_vision_select_layer", -2))
        strategy = "full" if config.get("mm_vision_select_feature", "patch") == "cls_patch" else "default"
        processor = towers.processor_settings(kind, vision_cfg.image_size, [directory] if directory else [])
    mm_hidden = int(config.get("mm_hidden_size", vision_cfg.hidden_size))
    if mm_hidden != vision_cfg.hidden_size:
        raise HarnessError(
            f"checkpoint {path}: mm_hidden_size {mm_hidden} differs from the vision tower's hidden size "
            f"{vision_cfg.hidden_size}"
        )
    projector = projector_part(source.tensors, PROJECTOR_PREFIX, text_cfg.hidden_size, mm_hidden, path)

    tokenizer, _ = load_tokenizer(source.tokenizer_dirs, path)
    notes = list(source.notes)
    live = legacy_vocabulary(tokenizer, config, text_cfg.vocab_size, notes)
    tied = bool(getattr(text_cfg, "tie_word_embeddings", False))
    vocab = fit_vocabulary(text, tied, live, image_token_id(tokenizer), bias)
    text_cfg.vocab_size = vocab.rows
    sources = dict(source.sources)
    if directory is not None:
        sources["tower"] = directory
    if from_directory:
        notes.append(f"vision tower weights from {directory}")
    return Converted(
        format=source.format,
        config=llava_config(
            text_cfg, vision_cfg, vocab.image_token_id, layer, strategy, towers.image_tokens(vision_cfg, strategy)
        ),
        text=text,
        vision=vision,
        projector=projector,
        tokenizer=tokenizer,
        image_processor=processor,
        template=recorded_template(config) or DEFAULT_TEMPLATES[source.family],
        image_aspect_ratio=aspect_ratio(config, path),
        sources=sources,
        lm_head_bias=vocab.bias,
        live_vocab=live,
        stored_vocab=vocab.stored,
        notes=notes,
    )
