"""Vision towers: their configs, weights, feature selection and image processor settings."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from model_adapters.formats.converted import Part, align_names, check_part, module_shapes
from model_adapters.formats.tensors import Tensors, first_line, read_weights, weight_files

SIGLIP_SO400M = {
    "model_type": "siglip_vision_model",
    "hidden_size": 1152,
    "intermediate_size": 4304,
    "num_hidden_layers": 27,
    "num_attention_heads": 16,
    "image_size": 384,
    "patch_size": 14,
    "hidden_act": "gelu_pytorch_tanh",
    "layer_norm_eps": 1e-6,
}
CLIP_LARGE = {
    "model_type": "clip_vision_model",
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "patch_size": 14,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
    "projection_dim": 768,
}
# Published tower configs, so that checkpoints naming these hub towers load offline
# (their weights must still come from the checkpoint or a local tower directory).
KNOWN_TOWERS: dict[str, dict[str, Any]] = {
    "google/siglip-so400m-patch14-384": SIGLIP_SO400M,
    "bczhou/TinyLLaVA-3.1B-SigLIP": SIGLIP_SO400M,
    "bczhou/TinyLLaVA-2.0B-SigLIP": SIGLIP_SO400M,
    "bczhou/TinyLLaVA-1.5B-SigLIP": SIGLIP_SO400M,
    "openai/clip-vit-large-patch14-336": {**CLIP_LARGE, "image_size": 336},
    "openai/clip-vit-large-patch14": {**CLIP_LARGE, "image_size": 224},
}
TOWER_KINDS = {"siglip_vision_model": "siglip", "siglip": "siglip", "clip_vision_model": "clip", "clip": "clip"}
SIGLIP_MEAN_STD = [0.5, 0.5, 0.5]
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
VISION_PREFIX = "vision_model."


def tower_kind(config: Mapping[str, Any]) -> str:
    """"siglip" or "clip" from a tower config; HarnessError for other towers."""
    kind = TOWER_KINDS.get(str(config.get("model_type", "")))
    if kind is None:
        raise HarnessError(
            f"vision tower type '{config.get('model_type')}' is not supported (supported: SigLIP, CLIP)"
        )
    return kind


def vision_config(config: Mapping[str, Any], **overrides: Any) -> Any:
    """A transformers SigLIP/CLIP vision config from a config dict (full SigLIP/CLIP configs too)."""
    from transformers import CLIPVisionConfig, SiglipVisionConfig

    data = dict(config)
    if data.get("model_type") in ("siglip", "clip"):
        data = dict(data.get("vision_config") or {}, model_type=data["model_type"] + "_vision_model")
    kind = tower_kind(data)
    data.pop("model_type", None)
    data.update(overrides)
    if kind == "siglip":
        data["vision_use_head"] = False  # the pooling head is never used for LLaVA features
        return SiglipVisionConfig(**data)
    return CLIPVisionConfig(**data)


def read_tower_config(directory: Path) -> dict[str, Any]:
    try:
        data = json.loads((directory / "config.json").read_text())
    except (OSError, ValueError) as exc:
        file = directory / "config.json"
        raise HarnessError(f"cannot read the vision tower config {file}: {first_line(exc)}") from exc
    if not isinstance(data, dict):
        raise HarnessError(f"{directory / 'config.json'} is not a JSON object")
    return data


def tower_weights(directory: Path) -> Tensors:
    """A tower directory's vision weights (``vision_model.*``; text towers of full CLIP/SigLIP dropped)."""
    tensors = read_weights(directory)
    vision = {k: v for k, v in tensors.items() if k.startswith(VISION_PREFIX)}
    return vision or tensors


def has_tower_weights(directory: Path | None) -> bool:
    return directory is not None and bool(weight_files(directory))


def meta_vision_model(config: Any) -> Any:
    from accelerate import init_empty_weights
    from transformers import AutoModel

    with init_empty_weights():
        return AutoModel.from_config(config)


def prepare_vision(part: Part, config: Any, path: Path, drop_layers_from: int | None = None) -> Part:
    """Check a tower's tensors against ``config`` and name them as the installed transformers does.

    ``drop_layers_from`` removes encoder layers from that index on (the legacy SigLIP deletion).
    Unused SigLIP pooling-head tensors are dropped.
    """
    part = part.renamed({})
    for key in list(part.tensors):
        bare = key.removeprefix(VISION_PREFIX)
        dropped_layer = (
            drop_layers_from is not None
            and bare.startswith("encoder.layers.")
            and int(bare.split(".")[2]) >= drop_layers_from
        )
        if bare.startswith("head.") or dropped_layer:
            part.pop(key)
    expected = module_shapes(meta_vision_model(config))
    part = align_names(part, expected, VISION_PREFIX)
    check_part(part, expected, "vision tower", path)
    return part


def stored_layers(part: Part) -> int:
    """How many encoder layers the tensors hold."""
    indices = {
        int(key.removeprefix(VISION_PREFIX).split(".")[2])
        for key in part.tensors
        if key.removeprefix(VISION_PREFIX).startswith("encoder.layers.")
    }
    return max(indices) + 1 if indices else 0


def image_tokens(config: Any, strategy: str) -> int:
    """Features per image for Llava's selection ``strategy`` ("default" drops the first token)."""
    patches = (config.image_size // config.patch_size) ** 2
    cls_token = 1 if config.model_type.startswith("clip") else 0
    return patches + cls_token - (1 if strategy == "default" else 0)


def processor_settings(kind: str, image_size: int, candidates: Sequence[Path]) -> dict[str, Any]:
    """Image processor settings: the first ``preprocessor_config.json`` among ``candidates``, else the
    published defaults of the tower family at ``image_size`` (SigLIP: square resize; CLIP: shortest edge
    + centre crop; both bicubic)."""
    for directory in candidates:
        file = directory / "preprocessor_config.json"
        if file.is_file():
            try:
                return dict(json.loads(file.read_text()))
            except (OSError, ValueError) as exc:
                raise HarnessError(f"cannot read {file}: {first_line(exc)}") from exc
    common = {"do_resize": True, "resample": 3, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True}
    if kind == "siglip":
        return {
            **common,
            "image_processor_type": "SiglipImageProcessor",
            "size": {"height": image_size, "width": image_size},
            "image_mean": SIGLIP_MEAN_STD,
            "image_std": SIGLIP_MEAN_STD,
            "do_convert_rgb": True,
        }
    return {
        **common,
        "image_processor_type": "CLIPImageProcessor",
        "size": {"shortest_edge": image_size},
        "do_center_crop": True,
        "crop_size": {"height": image_size, "width": image_size},
        "image_mean": CLIP_MEAN,
        "image_std": CLIP_STD,
        "do_convert_rgb": True,
    }
