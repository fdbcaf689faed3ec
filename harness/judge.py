"""The judge contract: a model in the role of grader (choice extraction, answer review).

Tasks receive a judge in ``Task.score(..., judge=...)`` when one is configured; with none, judged
steps are skipped as the official code does without an API key (for MMBench: an unmatched answer
is wrong, never guessed). The OpenAI-compatible implementation comes with the judge subsystem.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass
class JudgeReply:
    """One judge call: the reply text (or the error), which model answered, and what was asked."""

    text: str = ""
    error: str | None = None
    model: str = ""  # the model id the server reported
    prompt_hash: str = ""
    settings: dict[str, Any] = field(default_factory=dict)  # temperature, max_tokens...


@runtime_checkable
class Judge(Protocol):
    """What a task may ask of a judge."""

    name: str

    def complete(self, messages: list[dict[str, str]], temperature: float, max_tokens: int) -> JudgeReply:
        """One chat completion (``messages`` as role/content dicts). Errors are returned, not raised."""
        ...
