"""What the judged tasks (LLaVA-Bench, MM-Vet) share: no judge means no score, the number of judge runs, what a
sample keeps about its judge calls, and the mean over runs that their statistics recompute."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from harness.errors import UsageError
from harness.judging.contract import Judge
from harness.stats.bootstrap import Totals, mean_of_defined, ratio
from harness.types import Sample, TaskResult
from tasks.common.answers import Counts, count_responses
from tasks.common.scoring import Header, Responses, not_scored

JudgedScorer = Callable[[Sequence[Sample], Responses, Header, Mapping[str, Any] | None, Judge | None], TaskResult]


class Verdict(Protocol):
    """One item judged in one run: the model that answered, and the error when the call failed."""

    model: str
    error: str | None


@dataclass(frozen=True)
class JudgedScoring:
    """One scoring with a judge: the samples, their answers, the result header, the protocol settings."""

    samples: Sequence[Sample]
    responses: Responses
    header: Header
    settings: Mapping[str, Any]
    judge: Judge

    def judge_runs(self, default: int) -> int:
        """The ``judge_runs`` setting: how many times every item is judged (at least once)."""
        runs = int(self.settings.get("judge_runs", default))
        if runs < 1:
            raise UsageError(f"judge_runs must be at least 1, got {runs}")
        return runs

    @property
    def counts(self) -> Counts:
        """Samples, answers that are model errors, samples without an answer."""
        return count_responses(self.samples, self.responses)


def needs_judge(score: Callable[[JudgedScoring], TaskResult], why_not: str) -> JudgedScorer:
    """A task scorer ``(samples, responses, header, settings=None, judge=None)`` that runs ``score`` with the
    judge; without a judge its result has no metrics and says ``not scored: <why_not>``."""

    def scorer(
        samples: Sequence[Sample],
        responses: Responses,
        header: Header,
        settings: Mapping[str, Any] | None = None,
        judge: Judge | None = None,
    ) -> TaskResult:
        if judge is None:
            return not_scored(header, why_not)
        return score(JudgedScoring(samples, responses, header, settings or {}, judge))

    scorer.__doc__ = score.__doc__
    return scorer


def judge_trail(verdicts: Sequence[Verdict], calls: Sequence[Any]) -> dict[str, list[Any]]:
    """What a judged sample's detail keeps about the judge, one entry per run: model, error, call records."""
    return {
        "judge_models": [v.model for v in verdicts],
        "judge_errors": [v.error for v in verdicts],
        "judge_calls": list(calls),
    }


def percent_ratio_over_runs(group: str, runs: int, numerator: str, denominator: str) -> Callable[[Totals], np.ndarray]:
    """An estimand's combine: the mean over judge runs of 100 x the ratio of two column totals, the columns of
    run ``j`` being ``<group>:<j>:<numerator>`` and ``<group>:<j>:<denominator>`` (undefined runs left out)."""

    def combine(t: Totals) -> np.ndarray:
        per_run = [ratio(t[f"{group}:{j}:{numerator}"], t[f"{group}:{j}:{denominator}"]) for j in range(runs)]
        return mean_of_defined([100.0 * value for value in per_run])

    return combine
