"""lmms-eval ``generate_until`` arguments as our requests (no lmms-eval import: testable anywhere).

An lmms-eval request is (context, gen_kwargs, doc_to_visual, doc_id, task, split); the plugin resolves
the visuals and hands them here with the context and the generation kwargs.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

from harness.types import IMAGE_PLACEHOLDER, GenerationSettings, ImageRef, Request

DEFAULT_MAX_NEW_TOKENS = 128


def image_ref(image: Any) -> ImageRef:
    """A PIL image as lossless PNG bytes (what our requests carry); anything else is refused."""
    if not hasattr(image, "save") or not hasattr(image, "convert"):
        raise ValueError(f"only images are supported, got a {type(image).__name__} visual (video or audio?)")
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    return ImageRef(data=buffer.getvalue())


def prompt_with_images(context: str, n_images: int) -> str:
    """The context with image placeholders: kept when the task wrote them, else put first on one line."""
    if n_images == 0 or IMAGE_PLACEHOLDER in context:
        return context
    return " ".join([IMAGE_PLACEHOLDER] * n_images) + "\n" + context


def generation_settings(gen_kwargs: Mapping[str, Any]) -> GenerationSettings:
    """max_new_tokens, temperature (0 or no sampling: greedy) and ``until`` as stop strings."""
    until = gen_kwargs.get("until") or ()
    stops = (until,) if isinstance(until, str) else tuple(str(s) for s in until)
    temperature = float(gen_kwargs.get("temperature") or 0.0)
    if gen_kwargs.get("do_sample") is False:
        temperature = 0.0
    beams = gen_kwargs.get("num_beams")
    if beams not in (None, 1):
        raise ValueError(f"num_beams={beams} is not supported (greedy or sampling only)")
    return GenerationSettings(
        max_new_tokens=int(gen_kwargs.get("max_new_tokens") or DEFAULT_MAX_NEW_TOKENS),
        temperature=temperature,
        stop=stops,
    )


def build_request(
    task: str, doc_id: Any, context: str, gen_kwargs: Mapping[str, Any], visuals: Sequence[Any]
) -> Request:
    """Our request for one lmms-eval generate_until instance."""
    images = tuple(image_ref(v) for v in visuals)
    return Request(
        task=task,
        sample_id=str(doc_id),
        prompt=prompt_with_images(context, len(images)),
        images=images,
        generation=generation_settings(gen_kwargs),
    )


def flatten_visuals(visuals: Any) -> list[Any]:
    """doc_to_visual's result as a flat list (None: no visuals; nested lists are flattened)."""
    if visuals is None:
        return []
    if not isinstance(visuals, (list, tuple)):
        return [visuals]
    flat: list[Any] = []
    for item in visuals:
        flat.extend(flatten_visuals(item))
    return flat
