"""One chat-completions call to an OpenAI-compatible endpoint, with bounded retries and backoff.

Shared by the judges (``harness.judging.setup``) and the ``openai`` model adapter. Transport failures
(connection refused or dropped, timeouts, HTTP 408/409/429/5xx) are retried with exponential
backoff, waiting at least what a ``Retry-After`` header asks (capped); other HTTP errors (400, 401,
404...) are not, since repeating them cannot help. A reply that is not a chat completion (an HTML page,
a JSON list, ``choices`` or ``message`` missing or of the wrong type) is an error too. After the last
try the failure comes back as ``ChatOutcome.error``: a call never raises. The API key is removed from
every error and every reply text, so it cannot reach a log, a cache or a results file.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from harness.errors import UsageError

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
PLACEHOLDER_KEY = "no-key"  # sent to a local server when no key is set (the client insists on one)
RETRY_STATUS = frozenset({408, 409, 429})
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})
RETRY_AFTER_CAP = 120.0  # seconds: the longest Retry-After honoured


def normalise_base_url(url: str, flag: str) -> str:
    """``url`` without a trailing slash; UsageError naming ``flag`` unless it is an http(s) URL."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"{flag} must be an http(s) URL such as http://127.0.0.1:8000/v1; got '{url}'")
    return url.strip().rstrip("/")


def is_local(base_url: str) -> bool:
    host = (urlsplit(base_url).hostname or "").lower()
    return host in LOCAL_HOSTS or host.startswith("127.")


def resolve_api_key(env_name: str, base_url: str, flag: str) -> str:
    """The key from ``$env_name``; a placeholder for a local server; else UsageError naming ``flag``."""
    key = os.environ.get(env_name, "")
    if key:
        return key
    if is_local(base_url):
        return PLACEHOLDER_KEY
    raise UsageError(f"${env_name} is not set: export the API key for {base_url} (or name another variable: {flag})")


@dataclass
class ChatOutcome:
    """What one call gave: the reply and the model the server reported, or the error after retries."""

    text: str = ""
    model: str = ""
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None
    attempts: int = 0
    seconds: float = 0.0


class ChatClient:
    """A thread-safe client for ``POST {base_url}/chat/completions`` (the ``openai`` package)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        timeout: float = 60.0,
        retries: int = 3,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
    ) -> None:
        try:
            import openai
        except ImportError as exc:  # the judge extra is not installed
            raise UsageError("OpenAI-compatible endpoints need the openai package: pip install openai") from exc
        self.base_url = base_url
        self.retries = max(0, retries)
        self.backoff = max(0.0, backoff)
        self.max_backoff = max_backoff
        self._secret = api_key
        self._openai = openai
        # The package's own retries are off: ours are counted, bounded and logged the same way everywhere.
        self._client = openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=0)

    def complete(self, payload: Mapping[str, Any]) -> ChatOutcome:
        """One chat completion; retried on transport errors, never raising."""
        start = time.perf_counter()
        last = ""
        wait = 0.0
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(max(self._delay(attempt), wait))
            try:
                completion = self._client.chat.completions.create(**payload)
            except Exception as exc:  # every failure becomes data
                last = self._describe(exc)
                wait = _retry_after(exc)
                if self._retryable(exc):
                    continue
                return ChatOutcome(error=last, attempts=attempt + 1, seconds=time.perf_counter() - start)
            try:
                outcome = self._read(completion)
            except (AttributeError, TypeError, ValueError, IndexError, KeyError) as exc:
                outcome = ChatOutcome(error=self.redact(f"reply from {self.base_url} is not a chat completion ({exc})"))
            outcome.attempts = attempt + 1
            outcome.seconds = time.perf_counter() - start
            return outcome
        tries = self.retries + 1
        return ChatOutcome(
            error=f"{last} (gave up after {tries} tr{'y' if tries == 1 else 'ies'})",
            attempts=tries,
            seconds=time.perf_counter() - start,
        )

    def _delay(self, attempt: int) -> float:
        return min(self.max_backoff, self.backoff * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)

    def _retryable(self, exc: Exception) -> bool:
        if isinstance(exc, self._openai.APIConnectionError):  # includes timeouts
            return True
        if isinstance(exc, self._openai.APIStatusError):
            return exc.status_code in RETRY_STATUS or exc.status_code >= 500
        return False

    def _describe(self, exc: Exception) -> str:
        if isinstance(exc, self._openai.APIStatusError):
            text = f"HTTP {exc.status_code} from {self.base_url}: {exc.message}"
        else:
            text = f"{type(exc).__name__}: {exc}"
        return self.redact(" ".join(text.split()))

    def _read(self, completion: Any) -> ChatOutcome:
        """The reply's text and model; ValueError/TypeError when it is not a chat completion."""
        if isinstance(completion, (str, bytes, list)) or not hasattr(completion, "choices"):
            raise ValueError(f"got {type(completion).__name__}")
        model = self.redact(str(getattr(completion, "model", "") or ""))
        choices = completion.choices
        if choices is None or (isinstance(choices, list) and not choices):
            return ChatOutcome(error=f"reply from {self.base_url} has no choices", model=model)
        if not isinstance(choices, list):
            raise ValueError(f"'choices' is {type(choices).__name__}, not a list")
        first = choices[0]
        message = getattr(first, "message", None)
        content = getattr(message, "content", None) if message is not None else None
        if message is None or not (content is None or isinstance(content, str)):
            raise ValueError("'choices[0].message' has no text content")
        usage = getattr(completion, "usage", None)
        return ChatOutcome(
            text=self.redact(content or ""),
            model=model,
            finish_reason=getattr(first, "finish_reason", None),
            prompt_tokens=_count(getattr(usage, "prompt_tokens", 0)),
            completion_tokens=_count(getattr(usage, "completion_tokens", 0)),
        )

    def redact(self, text: str) -> str:
        """``text`` with the API key replaced (servers may echo request headers in error bodies)."""
        if self._secret and self._secret != PLACEHOLDER_KEY:
            text = text.replace(self._secret, "[redacted]")
        return text

    def close(self) -> None:
        self._client.close()


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _retry_after(exc: Exception) -> float:
    """Seconds a ``Retry-After`` header on an error response asks to wait (0 when absent or unreadable)."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    value = headers.get("retry-after") if headers is not None else None
    if not value:
        return 0.0
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return 0.0
    return min(max(0.0, seconds), RETRY_AFTER_CAP)
