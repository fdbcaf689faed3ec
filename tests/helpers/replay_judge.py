"""A stand-in for an external judge model (GPT-4) that answers from recorded replies.

It implements the ``harness.judging.contract.Judge`` protocol in process. Each recorded entry is keyed by a piece
of text that occurs in exactly one item's prompt (for example the item's question and answer); a call
is answered from the first key found in the last message. ``index_by="run"`` answers run ``j`` with
the key's ``j``-th reply (what a published grade or review file holds per run); ``index_by="order"``
answers the ``k``-th call for a key with its ``k``-th reply (scripted retry sequences). Every call is
logged (messages, temperature, max_tokens, run) for the tests to check the exact requests.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from harness.judging.contract import JudgeReply


@dataclass(frozen=True)
class Call:
    """One request the judge received."""

    messages: list[dict[str, str]]
    temperature: float
    max_tokens: int
    run: int

    @property
    def content(self) -> str:
        return self.messages[-1]["content"]


@dataclass
class ReplayJudge:
    """Recorded replies by prompt key; a key that is not found, or has run out of replies, is an error reply."""

    replies: Mapping[str, Sequence[str]]
    model: str = "gpt-4"
    index_by: Literal["run", "order"] = "run"
    concurrency: int = 1
    name: str = "replay"
    calls: list[Call] = field(default_factory=list)
    _served: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def key_of(self, content: str) -> str | None:
        return next((key for key in self.replies if key in content), None)

    def complete(
        self, messages: list[dict[str, str]], temperature: float, max_tokens: int, run: int = 0, attempt: int = 0
    ) -> JudgeReply:
        settings = {"temperature": temperature, "max_tokens": max_tokens, "run": run}
        digest = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()
        with self._lock:
            self.calls.append(Call([dict(m) for m in messages], temperature, max_tokens, run))
            key = self.key_of(messages[-1]["content"])
            if key is None:
                return JudgeReply(error="no recorded reply for this prompt", prompt_hash=digest, settings=settings)
            index = run if self.index_by == "run" else self._served.get(key, 0)
            self._served[key] = self._served.get(key, 0) + 1
        recorded = self.replies[key]
        if index >= len(recorded):
            return JudgeReply(error=f"only {len(recorded)} recorded replies", prompt_hash=digest, settings=settings)
        return JudgeReply(text=recorded[index], model=self.model, prompt_hash=digest, settings=settings)
