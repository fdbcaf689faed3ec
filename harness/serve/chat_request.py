"""An OpenAI chat-completions request body turned into one harness ``Request`` (for ``harness serve``).

System messages become ``Request.system`` (joined by newlines); user messages become the prompt
(joined by newlines). Content is a string or a list of parts: ``text`` parts are copied, each
``image_url`` part (a ``data:`` URL with base64 bytes) becomes an image and an ``<image>\\n``
placeholder in its place, LLaVA's convention. ``max_tokens`` (or ``max_completion_tokens``) becomes
``max_new_tokens``; ``temperature`` 0 (the default here, unlike OpenAI's 1) means greedy decoding;
``stop`` is passed on. Anything malformed raises ``BadRequest`` naming the field.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import uuid
from collections.abc import Mapping
from typing import Any

from harness.types import IMAGE_PLACEHOLDER, GenerationSettings, ImageRef, Request

DEFAULT_MAX_TOKENS = 256
MAX_TOKENS_LIMIT = 1 << 16
MAX_STOPS = 16
MAX_PROMPT_CHARS = 65_536  # one request may not hold the batch hostage with a huge prompt
MAX_IMAGE_PIXELS = 25_000_000  # decoding and resizing a larger image takes seconds for every other client
SERVE_TASK = "serve"


class BadRequest(Exception):
    """A request the server answers with HTTP 400 (or ``status``); ``param`` names the offending field."""

    def __init__(self, param: str, message: str, status: int = 400) -> None:
        super().__init__(f"{param}: {message}")
        self.param = param
        self.message = f"{param}: {message}"
        self.status = status


def decode_data_url(url: str, where: str) -> bytes:
    """The bytes of a ``data:[mime];base64,...`` URL; BadRequest for any other URL."""
    if not url.startswith("data:"):
        raise BadRequest(where, "only data: URLs (base64 image bytes) are supported; this server fetches nothing")
    header, sep, payload = url.partition(",")
    if not sep or not header.endswith(";base64"):
        raise BadRequest(where, "expected a base64 data URL such as data:image/png;base64,...")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(where, f"invalid base64: {exc}") from None
    if not data:
        raise BadRequest(where, "the data URL holds no bytes")
    return data


def _check_pixels(data: bytes, where: str) -> None:
    """BadRequest when the image's header declares more than ``MAX_IMAGE_PIXELS`` (read before decoding)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as header:
        width, height = header.size
    if width * height > MAX_IMAGE_PIXELS:
        raise BadRequest(where, f"image too large ({width}x{height}; at most {MAX_IMAGE_PIXELS:,} pixels)", 413)


def _image(part: Mapping[str, Any], where: str) -> ImageRef:
    value = part.get("image_url")
    url = value.get("url") if isinstance(value, Mapping) else value
    if not isinstance(url, str):
        raise BadRequest(f"{where}.image_url", "expected {\"url\": \"data:image/...;base64,...\"}")
    image = ImageRef(data=decode_data_url(url, f"{where}.image_url.url"))
    try:
        _check_pixels(image.data, f"{where}.image_url.url")
        image.open()
    except BadRequest:
        raise
    except Exception as exc:  # PIL raises several types for bad bytes
        raise BadRequest(f"{where}.image_url.url", f"cannot decode the image: {type(exc).__name__}: {exc}") from None
    return image


def _content(content: Any, where: str, images_allowed: bool) -> tuple[str, list[ImageRef]]:
    """The text (images as ``<image>\\n`` placeholders) and the images of one message's content."""
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise BadRequest(where, "content must be a string or a list of text / image_url parts")
    pieces: list[str] = []
    images: list[ImageRef] = []
    for j, part in enumerate(content):
        at = f"{where}[{j}]"
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise BadRequest(f"{at}.text", "a text part needs a string 'text'")
            pieces.append(part["text"])
        elif kind == "image_url":
            if not images_allowed:
                raise BadRequest(at, "images are accepted in user messages only")
            images.append(_image(part, at))
            pieces.append(IMAGE_PLACEHOLDER + "\n")
        else:
            raise BadRequest(f"{at}.type", f"unsupported content part type {kind!r} (use 'text' or 'image_url')")
    return "".join(pieces), images


def _number(body: Mapping[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadRequest(name, f"must be a number; got {value!r}")
    if not low <= value <= high:
        raise BadRequest(name, f"must be between {low:g} and {high:g}; got {value!r}")
    return float(value)


def _max_tokens(body: Mapping[str, Any]) -> int:
    name = "max_tokens" if body.get("max_tokens") is not None else "max_completion_tokens"
    value = body.get(name)
    if value is None:
        return DEFAULT_MAX_TOKENS
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TOKENS_LIMIT:
        raise BadRequest(name, f"must be an integer from 1 to {MAX_TOKENS_LIMIT}; got {value!r}")
    return value


def _stop(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops) or len(stops) > MAX_STOPS:
        raise BadRequest("stop", f"must be a non-empty string or a list of at most {MAX_STOPS} of them")
    return tuple(stops)


def parse_chat_request(body: Any) -> Request:
    """One ``Request`` from a chat-completions body; BadRequest naming the field when it is malformed."""
    if not isinstance(body, Mapping):
        raise BadRequest("body", "the request body must be a JSON object")
    if body.get("stream"):
        raise BadRequest("stream", "streaming is not supported; leave stream unset or false")
    if body.get("n") not in (None, 1):
        raise BadRequest("n", "only n=1 is supported")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages", "required: a non-empty list of {role, content} objects")
    system: list[str] = []
    user: list[str] = []
    images: list[ImageRef] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, Mapping):
            raise BadRequest(where, "each message must be an object with 'role' and 'content'")
        role = message.get("role")
        if role not in ("system", "user"):
            raise BadRequest(f"{where}.role", f"must be 'system' or 'user' (one question per request); got {role!r}")
        if "content" not in message:
            raise BadRequest(f"{where}.content", "required")
        text, found = _content(message["content"], f"{where}.content", role == "user")
        (system if role == "system" else user).append(text)
        images.extend(found)
    if not user:
        raise BadRequest("messages", "at least one user message is needed")
    prompt = "\n".join(user)
    length = len(prompt) + sum(len(t) for t in system)
    if length > MAX_PROMPT_CHARS:
        raise BadRequest("messages", f"prompt too long ({length:,} characters; at most {MAX_PROMPT_CHARS:,})", 413)
    if prompt.count(IMAGE_PLACEHOLDER) != len(images):
        raise BadRequest("messages", f"the text may not contain the reserved {IMAGE_PLACEHOLDER} placeholder; "
                         "send images as image_url parts")  # fmt: skip
    generation = GenerationSettings(
        max_new_tokens=_max_tokens(body),
        temperature=_number(body, "temperature", 0.0, 0.0, 2.0),
        stop=_stop(body.get("stop")),
    )
    return Request(
        task=SERVE_TASK,
        sample_id=uuid.uuid4().hex,
        prompt=prompt,
        images=tuple(images),
        generation=generation,
        system="\n".join(system) if system else None,
    )
