"""Shared by every task: the answer text of each sample, with missing and errored answers counted."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from harness.types import Response, Sample


@dataclass(frozen=True)
class Counts:
    """The counts a task result reports: samples scored, answers that are model errors, samples without one."""

    samples: int
    errors: int = 0
    missing: int = 0


def count_responses(samples: Sequence[Sample], responses: Mapping[str, Response]) -> Counts:
    """A sample with no response is missing; one whose response carries an error counts as an error."""
    found = [responses[s.id] for s in samples if s.id in responses]
    return Counts(len(samples), sum(1 for r in found if r.error is not None), len(samples) - len(found))


@dataclass
class Answers:
    """Per-sample answer texts in sample order ("" where there is no answer) and the counts."""

    texts: list[str]
    n_missing: int
    n_errors: int

    @property
    def counts(self) -> Counts:
        """The counts over every sample the answers were collected for."""
        return Counts(len(self.texts), self.n_errors, self.n_missing)

    def missing_note(self, total: int, treated_as: str) -> list[str]:
        if not self.n_missing:
            return []
        return [f"{self.n_missing} of {total} questions have no answer; scored as {treated_as}"]


def collect_answers(samples: Sequence[Sample], responses: Mapping[str, Response]) -> Answers:
    """A missing response counts as missing; an error response counts as an error and keeps its text."""
    texts: list[str] = []
    n_missing = n_errors = 0
    for sample in samples:
        response = responses.get(sample.id)
        if response is None:
            n_missing += 1
            texts.append("")
            continue
        n_errors += response.error is not None
        texts.append(response.text)
    return Answers(texts, n_missing, n_errors)


def answered_only(
    samples: Sequence[Sample], responses: Mapping[str, Response], tool: str
) -> tuple[list[Sample], int, list[str]]:
    """For official tools that iterate over the answers file: the answered samples, how many were left
    out, and a note saying so."""
    kept = [s for s in samples if s.id in responses]
    n_missing = len(samples) - len(kept)
    note = [f"{n_missing} of {len(samples)} questions have no answer; left out, as {tool} does"] if n_missing else []
    return kept, n_missing, note
