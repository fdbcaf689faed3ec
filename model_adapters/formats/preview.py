"""What a checkpoint declares about its settings (template, aspect ratio), read from its config alone."""

from __future__ import annotations

from typing import Any

from model_adapters.formats import Detected, factory, legacy
from model_adapters.formats.assemble import recorded_template


def declared_settings(detected: Detected) -> dict[str, Any]:
    """``conv_mode`` (None when it cannot be determined) and ``image_aspect_ratio`` of a converted format,
    the same values its converter records, without reading any weights."""
    config, path = detected.config, detected.path
    if detected.layout == "legacy":
        template = recorded_template(config) or legacy.DEFAULT_TEMPLATES[str(detected.family)]
        return {"conv_mode": template, "image_aspect_ratio": legacy.aspect_ratio(config, path)}
    text = factory.sub_config(config, "text_config", path, "language_model") or {}
    template = factory.factory_template(config, str(text.get("model_type", "")))
    return {"conv_mode": template, "image_aspect_ratio": factory.aspect_ratio(config, path)}
