"""The judge contract: a model in the role of grader (choice extraction, answer review).

Tasks receive a judge in ``Task.score(..., judge=...)`` when one is configured. They drive the
official call pattern themselves (prompts, retries, temperature schedule, repeated runs) through
``Judge.complete``; the judge owns transport (HTTP, timeouts, retries on transport errors), the
cache (keyed by model, messages, sampling settings, the run index and the attempt) and the records each call
leaves. With no judge, judged steps are skipped as the official code does without an API key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class JudgeReply:
    """One judge call: the reply text (or the error), which model answered, and what was asked."""

    text: str = ""
    error: str | None = None  # transport failure after the judge's own retries; text is then ""
    model: str = ""  # the model id the server reported
    prompt_hash: str = ""  # sha256 of the messages sent
    settings: dict[str, Any] = field(default_factory=dict)  # temperature, max_tokens, run, attempt
    cached: bool = False
    seconds: float = 0.0

    def record(self) -> dict[str, Any]:
        """What a judged sample keeps about this call (for samples logs and the leaderboard)."""
        return asdict(self)


@runtime_checkable
class Judge(Protocol):
    """What a task may ask of a judge."""

    name: str  # e.g. "openai:gpt-4-0613"
    model: str  # the model requested
    concurrency: int  # how many calls may be in flight at once

    def complete(
        self, messages: list[dict[str, str]], temperature: float, max_tokens: int, run: int = 0, attempt: int = 0
    ) -> JudgeReply:
        """One chat completion (``messages`` as role/content dicts). ``run`` is the index of a repeated
        grading run and ``attempt`` the index of a call within one item's chain (a re-ask after an empty or
        unreadable reply): the same prompt with another run or attempt is an independent call, never a
        cached replay. Errors are returned, not raised."""
        ...


def judge_map(judge: Judge, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``fn`` over ``items`` with at most ``judge.concurrency`` in flight; results in input order.

    ``fn`` may make several dependent calls (a retry chain) for its item.
    """
    items = list(items)
    workers = max(1, int(getattr(judge, "concurrency", 1)))
    if workers == 1 or len(items) <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(fn, items))
