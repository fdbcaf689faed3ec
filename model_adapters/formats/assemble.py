"""Pieces every converter assembles the same way: tokenizer, projector, Llava config, recorded template."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from model_adapters.formats.converted import Part, check_part

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
TEMPLATE_FIELDS = ("conv_mode", "conv_version", "conv_template")
PROJECTOR_NAMES = {"0.": "linear_1.", "2.": "linear_2."}
SUPPORTED_PROJECTOR = "mlp2x_gelu"


def has_tokenizer(directory: Path) -> bool:
    return any((directory / name).is_file() for name in TOKENIZER_FILES)


def load_tokenizer(directories: Sequence[Path], path: Path) -> tuple[Any, Path]:
    """The tokenizer of the first directory that has tokenizer files, and that directory."""
    from model_adapters.loading import load_tokenizer as load_checked

    for directory in directories:
        if has_tokenizer(directory):
            # never the repository's code (Factory configs carry an auto_map); transformers' warning that the
            # config's model_type is not a tokenizer's stays quiet
            return load_checked(directory, trust_remote_code=False), directory
    names = ", ".join(str(d) for d in directories)
    raise HarnessError(f"checkpoint {path}: no tokenizer files ({', '.join(TOKENIZER_FILES)}) in {names}")


def check_projector_type(value: Any, field: str, path: Path) -> None:
    if value != SUPPORTED_PROJECTOR:
        raise HarnessError(
            f"checkpoint {path}: {field} '{value}' is not supported (the Llava runtime has the "
            f"{SUPPORTED_PROJECTOR} projector only)"
        )


def projector_part(tensors: Mapping[str, Any], prefix: str, text_hidden: int, vision_hidden: int, path: Path) -> Part:
    """The two-layer MLP projector (``{prefix}0.*``, ``{prefix}2.*``) under Llava's names, shape-checked."""
    part = Part.take(tensors, prefix).renamed(PROJECTOR_NAMES)
    expected = {
        "linear_1.weight": (text_hidden, vision_hidden),
        "linear_1.bias": (text_hidden,),
        "linear_2.weight": (text_hidden, text_hidden),
        "linear_2.bias": (text_hidden,),
    }
    check_part(part, expected, "projector", path)  # type: ignore[arg-type]
    return part


def recorded_template(config: Mapping[str, Any], aliases: Mapping[str, str] | None = None) -> str | None:
    """The chat template a config records (``conv_mode`` and friends), mapped through ``aliases``."""
    for field in TEMPLATE_FIELDS:
        value = config.get(field)
        if value:
            return (aliases or {}).get(str(value), str(value))
    return None


def llava_config(
    text: Any, vision: Any, image_token_id: int, layer: int, strategy: str, image_seq_length: int
) -> Any:
    """The LlavaConfig that reproduces a format's feature selection (layer, strategy) with this tower."""
    from transformers import LlavaConfig

    return LlavaConfig(
        text_config=text,
        vision_config=vision,
        image_token_index=image_token_id,
        projector_hidden_act="gelu",
        vision_feature_layer=layer,
        vision_feature_select_strategy=strategy,
        image_seq_length=image_seq_length,
        tie_word_embeddings=bool(getattr(text, "tie_word_embeddings", False)),
    )
