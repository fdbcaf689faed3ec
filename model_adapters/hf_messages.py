"""Requests as transformers chat messages: ``<image>`` placeholders become image parts, in order.

The LLaVA convention puts the image on its own line (``"<image>\\nQuestion"``); a chat template places
images with its own separators, so whitespace around each placeholder is dropped.
"""

from __future__ import annotations

from typing import Any

from harness.types import IMAGE_PLACEHOLDER, Request

Message = dict[str, Any]


def content_parts(prompt: str) -> list[dict[str, str]]:
    """The prompt as image and text parts; empty text between placeholders is left out."""
    parts: list[dict[str, str]] = []
    for i, chunk in enumerate(prompt.split(IMAGE_PLACEHOLDER)):
        if i > 0:
            parts.append({"type": "image"})
        text = chunk.strip()
        if text:
            parts.append({"type": "text", "text": text})
    return parts


def request_messages(request: Request) -> list[Message]:
    """A system message (when the request sets one) and the user turn, in the list-of-parts form."""
    messages: list[Message] = []
    if request.system is not None:
        messages.append({"role": "system", "content": [{"type": "text", "text": request.system}]})
    messages.append({"role": "user", "content": content_parts(request.prompt)})
    return messages
