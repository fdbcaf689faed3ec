"""GQA testdev-balanced scoring: LLaVA's ``convert_gqa_for_eval.py`` + the official (LLaVA-patched) ``eval.py``.

Only the metrics that need no scene graphs or choices are computed: accuracy, binary, open,
distribution and the accuracy breakdowns (structural / semantic type, steps, words).

``score_gqa_lmms_eval`` is lmms-eval's scoring of the same answers (``tasks/gqa/gqa.yaml``: metric
``exact_match`` with ``ignore_case`` and ``ignore_punctuation``, mean): the stripped prediction and
the answer are lower-cased and every ASCII punctuation character is deleted, then compared. So
"No!", " yes", "yes\n" and "tshirt" for "t-shirt" are right there and wrong officially, while
"yes ." is wrong in both. It reports accuracy only (no binary/open split, no distribution).
"""

from __future__ import annotations

import string
from collections import defaultdict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from harness.results.records import Record, mean_of, meta, metadata_key, scored
from harness.stats.analytic import ANALYTIC_CLUSTERED, make_metric, mean_stderr
from harness.stats.bootstrap import Estimands
from harness.types import Metric, Sample, SampleScore, TaskResult
from tasks.common.answers import collect_answers
from tasks.common.scoring import Responses, right_or_wrong, task_result

# Operations whose step does not count as reasoning (eval.py's getStepsNum).
_NON_STEPS = ("exist", "query: name", "choose name")


def normalize_prediction(text: str) -> str:
    """LLaVA's conversion: drop every trailing period, lower-case; nothing else (no whitespace strip)."""
    return text.rstrip(".").lower()


def steps_number(semantic: Sequence[Mapping[str, Any]]) -> int:
    """Reasoning steps: program operations whose "op: arg" text contains none of the non-step markers."""
    count = 0
    for step in semantic:
        text = f"{step['operation']}: {step['argument']}"
        if not any(marker in text for marker in _NON_STEPS):
            count += 1
    return count


def words_number(question: str) -> int:
    """Question length as eval.py counts it: whitespace-separated words."""
    return len(question.split())


def chi_square(gold: Mapping[Hashable, Mapping[str, int]], predicted: Mapping[Hashable, Mapping[str, int]]) -> float:
    """eval.py's chiSquare: per global group sum (o-e)^2/e over gold answers, weighted by group size."""
    sum_score, sum_overall = 0.0, 0
    for group, answers in gold.items():
        score, overall = 0.0, 0
        group_pred = predicted.get(group, {})
        for answer, expected in answers.items():
            observed = group_pred.get(answer, 0)
            score += float(observed - expected) ** 2 / expected
            overall += expected
        sum_score += score * overall
        sum_overall += overall
    return float(sum_score) / sum_overall


@dataclass
class _Row:
    sample: Sample
    prediction: str
    score: float


def _percent(values: Sequence[float], clusters: Sequence[Hashable], description: str = "") -> Metric:
    """eval.py's avg(l) * 100 (0 when empty), with an image-clustered standard error."""
    if not values:
        return Metric(value=0.0, n=0, description=description)
    value = float(sum(values)) / len(values) * 100
    se = mean_stderr(values, clusters)
    return make_metric(value, None if se is None else 100 * se, len(values), description, method=ANALYTIC_CLUSTERED)


def _rows_metric(rows: Sequence[_Row], description: str = "") -> Metric:
    return _percent([r.score for r in rows], [r.sample.metadata["imageId"] for r in rows], description)


def _breakdown(rows: Sequence[_Row], key: Callable[[_Row], Any]) -> dict[str, Metric]:
    """Accuracy per key value, keys in sorted order (as eval.py prints them)."""
    groups: dict[Any, list[_Row]] = defaultdict(list)
    for row in rows:
        groups[key(row)].append(row)
    return {str(k): _rows_metric(groups[k]) for k in sorted(groups)}


def distribution(rows: Sequence[_Row]) -> float | None:
    """chiSquare / 100 over global groups, accumulated in question-file order; None without groups."""
    gold: dict[Hashable, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    predicted: dict[Hashable, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in sorted(rows, key=lambda r: r.sample.metadata.get("question_index", 0)):
        group = row.sample.metadata.get("global_group")
        if group is None:
            continue
        gold[group][row.sample.target] += 1
        predicted[group][row.prediction] += 1
    if not gold:
        return None
    return chi_square(gold, predicted) / 100


def _structural(row: _Row) -> str:
    return row.sample.metadata["structural"]


def score_gqa(
    samples: Sequence[Sample], responses: Responses, name: str, version: str, headline: Sequence[str] = ("accuracy",)
) -> TaskResult:
    """Score samples against responses exactly as LLaVA's GQA pipeline does."""
    rows: list[_Row] = []
    per_sample: list[SampleScore] = []
    answers = collect_answers(samples, responses)
    n_unbalanced = 0
    for sample, text in zip(samples, answers.texts):
        prediction = normalize_prediction(text)
        if not sample.metadata.get("balanced", True):
            n_unbalanced += 1
            detail = {"answer": sample.target, "balanced": False}
            per_sample.append(SampleScore(sample_id=sample.id, parsed=prediction, detail=detail))
            continue
        correct = prediction == sample.target
        rows.append(_Row(sample, prediction, 1.0 if correct else 0.0))
        per_sample.append(right_or_wrong(sample.id, prediction, correct, {"answer": sample.target}))

    notes: list[str] = []
    dist = distribution(rows)
    if dist is None:
        notes.append("distribution: no question has a global group; reported as 0.0")
    metrics = {
        "accuracy": _rows_metric(rows, "exact match after rstrip('.') and lower-case, percent"),
        "binary": _rows_metric([r for r in rows if _structural(r) != "query"], "non-query questions"),
        "open": _rows_metric([r for r in rows if _structural(r) == "query"], "query questions"),
        "distribution": Metric(
            value=0.0 if dist is None else dist,
            n=sum(1 for r in rows if r.sample.metadata.get("global_group") is not None),
            higher_is_better=False,
            description="chi-square of predicted vs gold answers per global group, /100",
        ),
    }
    breakdowns = {
        "structural": _breakdown(rows, _structural),
        "semantic": _breakdown(rows, lambda r: r.sample.metadata["semantic"]),
        "steps": _breakdown(rows, lambda r: r.sample.metadata["steps"]),
        "words": _breakdown(rows, lambda r: r.sample.metadata["words"]),
    }
    notes.extend(answers.missing_note(len(samples), "empty predictions (wrong)"))
    if n_unbalanced:
        notes.append(f"{n_unbalanced} unbalanced questions not scored (the official eval scores balanced ones only)")
    return task_result((name, version, headline), metrics, per_sample, answers.counts, notes, breakdowns)


# ---------------------------------------------------------------------------------------------
# lmms-eval


_DELETE_PUNCTUATION = str.maketrans("", "", string.punctuation)


def lmms_eval_normalize(text: str) -> str:
    """lmms-eval's exact_match preprocessing with ignore_case and ignore_punctuation (nothing else); trailing
    NUL characters go too, as numpy's fixed-width string arrays (which lmms-eval compares) drop them."""
    return text.lower().translate(_DELETE_PUNCTUATION).rstrip("\x00")


def score_gqa_lmms_eval(
    samples: Sequence[Sample], responses: Responses, name: str, version: str, headline: Sequence[str] = ("accuracy",)
) -> TaskResult:
    """lmms-eval's GQA score: exact match after strip (prediction), lower-case and punctuation deletion.

    Every sample is scored (lmms-eval's dataset has no isBalanced filter; testdev-balanced is all balanced).
    """
    answers = collect_answers(samples, responses)
    per_sample: list[SampleScore] = []
    values: list[float] = []
    for sample, text in zip(samples, answers.texts):
        prediction = lmms_eval_normalize(text.strip())
        gold = lmms_eval_normalize(str(sample.target))
        correct = prediction == gold
        values.append(1.0 if correct else 0.0)
        detail = {"answer": sample.target, "normalized_answer": gold}
        per_sample.append(right_or_wrong(sample.id, prediction, correct, detail))
    clusters = [s.metadata.get("imageId", s.id) for s in samples]
    accuracy = _percent(values, clusters, "lmms-eval exact_match (strip, lower-case, no ASCII punctuation), percent")
    notes = [
        "lmms-eval scoring: exact_match with ignore_case and ignore_punctuation; accuracy only "
        "(lmms-eval reports no binary/open split, distribution or type breakdowns)"
    ]
    notes.extend(answers.missing_note(len(samples), "empty predictions (wrong)"))
    return task_result((name, version, headline), {"accuracy": accuracy}, per_sample, answers.counts, notes)


# ---------------------------------------------------------------------------------------------
# Statistics


def estimands(records: Sequence[Record]) -> Estimands:
    """accuracy, binary and open as means of per-question scores, resampling images (questions of one
    image are not independent)."""
    rows = scored(records)
    image = metadata_key("imageId")
    binary = [r for r in rows if meta(r, "structural") != "query"]
    query = [r for r in rows if meta(r, "structural") == "query"]
    return Estimands({
        "accuracy": mean_of("accuracy", rows, image, "image"),
        "binary": mean_of("binary", binary, image, "image"),
        "open": mean_of("open", query, image, "image"),
    })  # fmt: skip
