"""Assembling a scored task: one ``SampleScore`` per sample and the ``TaskResult`` that carries them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness.types import Metric, Response, SampleScore, TaskResult, trusted_sample_score
from tasks.common.answers import Counts

Header = tuple[str, str, Sequence[str]]  # task name, version, headline metrics
Responses = Mapping[str, Response]  # sample id -> the model's answer; a sample with no entry has none


def right_or_wrong(
    sample_id: str, parsed: Any, correct: bool, detail: dict[str, Any], parse_failed: bool = False
) -> SampleScore:
    """A sample scored 1.0 when right and 0.0 when wrong."""
    return SampleScore(
        sample_id=sample_id,
        parsed=parsed,
        score=1.0 if correct else 0.0,
        correct=correct,
        parse_failed=parse_failed,
        detail=detail,
    )


def partial_credit(sample_id: str, parsed: Any, score: float, detail: dict[str, Any]) -> SampleScore:
    """A sample scored in [0, 1]; only full credit counts as correct."""
    if type(score) is float and type(sample_id) is str and type(detail) is dict:  # nothing to validate
        return trusted_sample_score(sample_id, parsed, score, score == 1.0, detail)
    return SampleScore(sample_id=sample_id, parsed=parsed, score=score, correct=score == 1.0, detail=detail)


def task_result(
    header: Header,
    metrics: Mapping[str, Metric],
    samples: list[SampleScore],
    counts: Counts,
    notes: list[str],
    breakdowns: Mapping[str, Mapping[str, Metric]] | None = None,
    parse_failures: int | None = None,
) -> TaskResult:
    """The result of one scoring; ``parse_failures`` defaults to the samples marked ``parse_failed``."""
    name, version, headline = header
    if parse_failures is None:
        parse_failures = sum(1 for s in samples if s.parse_failed)
    return TaskResult(
        task=name,
        version=version,
        metrics=dict(metrics),
        headline=list(headline),
        breakdowns={key: dict(rows) for key, rows in (breakdowns or {}).items()},
        samples=samples,
        n_samples=counts.samples,
        n_errors=counts.errors,
        n_parse_failures=parse_failures,
        n_missing=counts.missing,
        notes=notes,
    )


def not_scored(header: Header, why: str) -> TaskResult:
    """A result with no metrics that says why (for example a judged task scored without a judge)."""
    name, version, headline = header
    return TaskResult(task=name, version=version, metrics={}, headline=list(headline), notes=[f"not scored: {why}"])
