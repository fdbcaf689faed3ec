"""Joining the lines of a LLaVA answers JSONL to samples when a question_id is shared by several samples."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from harness.types import Sample

Key = tuple[str, str | None]  # (question_id, the question the prompt gives; None for a line without a prompt)


def match_in_order(
    samples: Sequence[Sample],
    records: Iterable[Mapping[str, Any]],
    sample_question: Callable[[Sample], str],
    prompt_question: Callable[[str, str], str],
) -> dict[str, str]:
    """Answers by sample id, joined on (question_id, question): ``sample_question(sample)`` on the sample side,
    ``prompt_question(question_id, prompt)`` on the line's; a line without a prompt joins on the question_id.

    The k-th line of a key answers the k-th sample of it; extra lines overwrite the last one (later wins).
    Lines with an unknown question_id are ignored before their prompt is read.
    """
    groups: dict[Key, list[str]] = {}
    for s in samples:
        qid = str(s.metadata["question_id"])
        groups.setdefault((qid, sample_question(s)), []).append(s.id)
        groups.setdefault((qid, None), []).append(s.id)
    seen: Counter[Key] = Counter()
    out: dict[str, str] = {}
    for rec in records:
        qid = str(rec.get("question_id"))
        if (qid, None) not in groups:
            continue
        prompt = rec.get("prompt")
        key: Key = (qid, None if prompt is None else prompt_question(qid, str(prompt)))
        candidates = groups.get(key, [])
        if candidates:
            out[candidates[min(seen[key], len(candidates) - 1)]] = str(rec.get("text", ""))
            seen[key] += 1
    return out
