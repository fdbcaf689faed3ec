"""Any model behind an OpenAI-compatible chat-completions endpoint (vLLM, SGLang, Ollama, llama.cpp,
``harness serve``, OpenAI itself): ``--model openai:MODEL --model-args base_url=URL,...``.

A request becomes one user message: each ``<image>`` placeholder of the prompt becomes an
``image_url`` part (a base64 data URL of the original bytes when they are PNG, JPEG, GIF or WebP,
else a PNG) in its place, with text parts in between; the single newline right after a placeholder
(LLaVA's ``"<image>\\n"``) is dropped. ``Request.system`` becomes a system message. Decoding is
greedy at temperature 0; ``max_tokens`` = ``max_new_tokens``; stop strings are passed on. A batch
is answered with up to ``concurrency`` calls in flight; a failed call (after bounded retries)
becomes that request's ``Response.error``.

Fingerprint: a served model's weights cannot be hashed from here, so the fingerprint (and with it
the response cache) covers the adapter version, the model name and the base URL only. Serve other
weights under the same name at the same URL and the cache would replay the old answers: give them
another ``--served-model-name`` (or clear the cache).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from harness.adapter import ModelAdapter, ModelInfo
from harness.errors import UsageError
from harness.openai_chat import DEFAULT_BASE_URL, DEFAULT_KEY_ENV, ChatClient, normalise_base_url, resolve_api_key
from harness.types import IMAGE_PLACEHOLDER, ImageRef, Request, Response

ADAPTER_VERSION = "openai-1"
MODEL_ARGS = ("base_url", "api_key_env", "concurrency", "timeout", "retries")
DEFAULTS = {"concurrency": 4, "timeout": 120.0, "retries": 3}
SENT_AS_IS = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}


def image_data_url(image: ImageRef) -> str:
    """A base64 data URL of the image: its own bytes in a web format, else re-encoded as PNG.

    Raises (OSError, ValueError...) when the image cannot be read or decoded.
    """
    from PIL import Image

    data = image.data or Path(image.checked_path()).read_bytes()
    decoded = Image.open(io.BytesIO(data))
    decoded.load()
    mime = SENT_AS_IS.get(decoded.format or "")
    if mime is None:
        buffer = io.BytesIO()
        decoded.convert("RGB").save(buffer, format="PNG")
        data, mime = buffer.getvalue(), "image/png"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def user_content(prompt: str, image_urls: Sequence[str]) -> str | list[dict[str, Any]]:
    """The user message content: the prompt itself without images, else text and image parts in order."""
    chunks = prompt.split(IMAGE_PLACEHOLDER)
    if len(chunks) - 1 != len(image_urls):
        n_slots = len(chunks) - 1
        raise ValueError(f"prompt has {n_slots} {IMAGE_PLACEHOLDER} placeholder(s) but {len(image_urls)} image(s)")
    if not image_urls:
        return prompt
    parts: list[dict[str, Any]] = []
    for i, chunk in enumerate(chunks):
        if i:
            parts.append({"type": "image_url", "image_url": {"url": image_urls[i - 1]}})
            chunk = chunk.removeprefix("\n")
        if chunk:
            parts.append({"type": "text", "text": chunk})
    return parts


def chat_messages(request: Request) -> list[dict[str, Any]]:
    """The messages for one request (the preparer: runs in DataLoader workers, picklable)."""
    if request.raw:
        raise ValueError("a raw prompt (a full model input) cannot be sent as chat messages")
    urls = [image_data_url(image) for image in request.images]
    messages: list[dict[str, Any]] = []
    if request.system is not None:
        messages.append({"role": "system", "content": request.system})
    messages.append({"role": "user", "content": user_content(request.prompt, urls)})
    return messages


def _number(args: Mapping[str, str], key: str, kind: type, low: float) -> Any:
    text = args.get(key)
    if text is None:
        return DEFAULTS[key]
    try:
        value = kind(text)
    except ValueError:
        raise UsageError(f"--model-args {key}={text} is not a {kind.__name__}") from None
    if value < low:
        raise UsageError(f"--model-args {key}={text} must be at least {low:g}")
    return value


class OpenAIAdapter(ModelAdapter):
    """A model served behind an OpenAI-compatible ``/chat/completions`` endpoint."""

    name = "openai"
    description = "any model behind an OpenAI-compatible chat-completions endpoint (vLLM, SGLang, harness serve...)"

    def __init__(
        self, model: str, base_url: str, api_key_env: str, concurrency: int, timeout: float, retries: int
    ) -> None:
        self.model = model
        self.base_url = base_url
        self.concurrency = concurrency
        key = resolve_api_key(api_key_env, base_url, "--model-args api_key_env=NAME")
        self.client = ChatClient(base_url, key, timeout, retries)
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="openai-adapter")
        identity = {"adapter_version": ADAPTER_VERSION, "model": model, "base_url": base_url}
        self._fingerprint = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
        self._info = ModelInfo(
            spec=f"{self.name}:{model}",
            name=model,
            path=base_url,
            fingerprint=self._fingerprint,
            device="api",
            details={
                "adapter_version": ADAPTER_VERSION,
                "base_url": base_url,
                "api_key_env": api_key_env,
                "concurrency": concurrency,
                "timeout": timeout,
                "retries": retries,
                "fingerprint_covers": "adapter version, model name and base URL (served weights cannot be hashed)",
            },
        )

    @classmethod
    def from_spec(cls, target: str, args: Mapping[str, str], device: str | None, seed: int) -> OpenAIAdapter:
        unknown = sorted(set(args) - set(MODEL_ARGS))
        if unknown:
            raise UsageError(
                f"unknown --model-args key(s) {', '.join(unknown)} for openai; valid keys: {', '.join(MODEL_ARGS)}"
            )
        base_url = normalise_base_url(args.get("base_url") or DEFAULT_BASE_URL, "--model-args base_url")
        return cls(
            model=target,
            base_url=base_url,
            api_key_env=args.get("api_key_env") or DEFAULT_KEY_ENV,
            concurrency=_number(args, "concurrency", int, 1),
            timeout=_number(args, "timeout", float, 0.001),
            retries=_number(args, "retries", int, 0),
        )

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    @property
    def info(self) -> ModelInfo:
        return self._info

    def preparer(self) -> Any:
        return chat_messages

    def generate(self, requests: Sequence[Request], prepared: Sequence[Any]) -> list[Response]:
        """Answer a batch with up to ``concurrency`` calls in flight; failures become error responses."""
        return list(self._pool.map(self._answer, requests, prepared))

    def _answer(self, request: Request, messages: list[dict[str, Any]]) -> Response:
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": request.generation.max_new_tokens,
            "temperature": float(request.generation.temperature),
        }
        if request.generation.stop:
            payload["stop"] = list(request.generation.stop)
        outcome = self.client.complete(payload)
        if outcome.error is not None:
            return Response(error=outcome.error, seconds=outcome.seconds)
        return Response(
            text=outcome.text.strip(),
            prompt_tokens=outcome.prompt_tokens,
            output_tokens=outcome.completion_tokens,
            seconds=outcome.seconds,
        )

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.client.close()
