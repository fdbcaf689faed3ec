"""LLaVA-Bench-in-the-Wild review: LLaVA's ``eval_gpt_review_bench.py`` + ``summarize_gpt_review.py``, and lmms-eval's.

Official review of one (question, reference answer, model answer):

1. Messages: the system message "You are a helpful and precise assistant for checking the quality of
   the answer." and one user message built from the image's context caption, the question, the
   reference as ``[<role> 1]``, the model answer as ``[<role> 2]`` and the rule of
   ``llava_bench_<category>`` from ``rule.json`` (its ``role`` and ``prompt``). A caption that is a list
   is joined with newlines, a string (as in ``context.jsonl``) is used as it is: the script as fixed on
   2023-08-16 (LLaVA commit 237165b), which LLaVA-1.5 and TinyLLaVA ran. The first release (v1.0.0)
   joined strings too, one character per line; no published LLaVA-1.5 review came from that version.
2. temperature 0.2, max_tokens 1024; run ``j`` of ``judge_runs`` is passed as ``run=j``.
3. The reply's first line, commas turned into spaces, split on single spaces: exactly two pieces that
   ``float`` reads give (reference score, model score); anything else gives (-1, -1), which is averaged
   in like any pair (and counted here as a parse failure).
4. Per category and for all: the mean of each score, rounded to 3 decimals; relative score =
   ``round(100 * model / reference, 1)``; the newer summarizer also prints both means x 10.

lmms-eval: the same message without the system message, temperature 0, one run, and a
parser that takes the first two numbers of the reply's (stripped) first line after turning commas and
semicolons into spaces (so "Assistant 1: 8 Assistant 2: 7" reads (1, 8)); otherwise (-1, -1).

A review whose call fails in transport (``JudgeReply.error``) is left out of its run, counted and noted.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np

from harness.errors import DataError
from harness.judging.contract import Judge, judge_map
from harness.results.records import Record, detail, meta
from harness.stats.analytic import make_metric, mean_stderr
from harness.stats.bootstrap import ColumnSums, Estimand, Estimands
from harness.types import Metric, Response, Sample, SampleScore, TaskResult
from tasks.common.judged import JudgedScoring, judge_trail, needs_judge, percent_ratio_over_runs
from tasks.common.requests import setting_choice
from tasks.common.scoring import task_result

FAILED = (-1.0, -1.0)
ALL = "all"
CATEGORY_PREFIX = "llava_bench_"
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
Pair = tuple[float, float]


def caption_text(caption: Any) -> str:
    """The context as shown to the judge (LLaVA's fixed script and lmms-eval alike): a list joined with
    newlines, a string as it is."""
    return "\n".join(caption) if isinstance(caption, list) else str(caption)


def review_content(context: str, question: str, reference: str, answer: str, role: str, rule: str) -> str:
    """The user message of one review, section by section."""
    sections = [
        f"[Context]\n{context}",
        f"[Question]\n{question}",
        f"[{role} 1]\n{reference}",
        f"[End of {role} 1]",
        f"[{role} 2]\n{answer}",
        f"[End of {role} 2]",
        f"[System]\n{rule}",
    ]
    return "\n\n".join(sections) + "\n\n"


def parse_official(review: str) -> Pair:
    """``parse_score`` of eval_gpt_review_bench.py: first line, commas -> spaces, exactly two pieces."""
    pieces = review.split("\n")[0].replace(",", " ").split(" ")
    if len(pieces) != 2:
        return FAILED
    try:
        return float(pieces[0]), float(pieces[1])
    except ValueError:
        return FAILED


def parse_lmms_eval(review: str) -> Pair:
    """lmms-eval's ``parse_comparative_response``: the first two numbers of the stripped first line."""
    line = review.strip().split("\n")[0].replace(",", " ").replace(";", " ")
    numbers = _NUMBER.findall(line)
    if len(numbers) < 2:
        return FAILED
    return float(numbers[0]), float(numbers[1])


@dataclass(frozen=True)
class Reviewer:
    """One protocol's review settings."""

    name: str
    parse: Callable[[str], Pair]
    system: str | None
    temperature: float
    max_tokens: int


SYSTEM = "You are a helpful and precise assistant for checking the quality of the answer."
REVIEWERS = {
    "official": Reviewer("official", parse_official, SYSTEM, 0.2, 1024),
    "lmms-eval": Reviewer("lmms-eval", parse_lmms_eval, None, 0.0, 1024),
}


def reviewer_for(settings: Mapping[str, Any]) -> Reviewer:
    """The protocol's reviewer with its ``judge_temperature`` / ``judge_max_tokens`` / ``judge_system`` overrides."""
    base = REVIEWERS[setting_choice(settings, "reviewer", tuple(REVIEWERS), "official")]
    system = SYSTEM if bool(settings.get("judge_system", base.system is not None)) else None
    return Reviewer(
        base.name,
        base.parse,
        system,
        float(settings.get("judge_temperature", base.temperature)),
        int(settings.get("judge_max_tokens", base.max_tokens)),
    )


def review_messages(sample: Sample, answer: str, reviewer: Reviewer) -> list[dict[str, str]]:
    """The messages of one review (the rule comes from the sample, as the loader read it)."""
    meta = sample.metadata
    rule = meta.get("rule")
    if rule is None:
        path = meta.get("rule_path", "llava-bench-in-the-wild/rule.json")
        raise DataError(f"{path}: LLaVA's rule file not found (llava/eval/table/rule.json of haotian-liu/LLaVA)")
    context = caption_text(meta["caption"])
    content = review_content(context, sample.question, meta["reference"], answer, rule["role"], rule["prompt"])
    messages = [{"role": "user", "content": content}]
    if reviewer.system is not None:
        messages.insert(0, {"role": "system", "content": reviewer.system})
    return messages


# ---------------------------------------------------------------------------------------------
# Reviewing


@dataclass
class Review:
    """One review: the score pair (None: the call failed), the raw reply and the call's record."""

    pair: Pair | None
    text: str = ""
    model: str = ""
    error: str | None = None
    record: dict[str, Any] = field(default_factory=dict)

    @property
    def unparsed(self) -> bool:
        return self.pair == FAILED


def review_one(judge: Judge, reviewer: Reviewer, messages: list[dict[str, str]], run: int) -> Review:
    """One judge call and its parse."""
    reply = judge.complete(messages, temperature=reviewer.temperature, max_tokens=reviewer.max_tokens, run=run)
    if reply.error is not None:
        return Review(None, "", reply.model, reply.error, reply.record())
    return Review(reviewer.parse(reply.text), reply.text, reply.model, None, reply.record())


def _review_item(
    judge: Judge, reviewer: Reviewer, messages: Mapping[str, list[dict[str, str]]], run: int, sid: str
) -> Review:
    return review_one(judge, reviewer, messages[sid], run)


def review_all(
    judge: Judge, reviewer: Reviewer, messages: Mapping[str, list[dict[str, str]]], runs: int
) -> list[dict[str, Review]]:
    """Run after run, the items of one run through ``judge_map``."""
    ids = list(messages)
    out = []
    for run in range(runs):
        reviews = judge_map(judge, partial(_review_item, judge, reviewer, messages, run), ids)
        out.append(dict(zip(ids, reviews)))
    return out


# ---------------------------------------------------------------------------------------------
# Summarizing


@dataclass(frozen=True)
class Summary:
    """One category of one run as summarize_gpt_review.py computes it."""

    reference: float  # mean reference score, rounded to 3 decimals
    model: float  # mean model score, rounded to 3 decimals
    relative: float | None  # round(100 * model / reference, 1); None when the reference mean is 0
    n: int


def summarize(pairs: Sequence[Pair]) -> Summary:
    """Means of the two scores (numpy, as the summarizer), rounded to 3 decimals, and their ratio."""
    means = np.asarray(pairs, dtype=float).mean(0).tolist()
    reference, model = round(means[0], 3), round(means[1], 3)
    relative = round(model / reference * 100, 1) if reference != 0 else None
    return Summary(reference, model, relative, len(pairs))


def summarize_run(reviews: Mapping[str, Review], categories: Mapping[str, str]) -> dict[str, Summary]:
    """Each category (``llava_bench_<category>``, sorted) and ``all`` over the reviews that were made."""
    groups: dict[str, list[Pair]] = {}
    for sid, review in reviews.items():
        if review.pair is None:
            continue
        groups.setdefault(CATEGORY_PREFIX + categories[sid], []).append(review.pair)
        groups.setdefault(ALL, []).append(review.pair)
    return {key: summarize(groups[key]) for key in sorted(groups)}


def relative_stderr(pairs: Sequence[Pair]) -> float | None:
    """Delta-method standard error of 100 x mean(model) / mean(reference) over items."""
    if len(pairs) < 2:
        return None
    ref = sum(p[0] for p in pairs) / len(pairs)
    mod = sum(p[1] for p in pairs) / len(pairs)
    if ref == 0:
        return None
    ratio = mod / ref
    se = mean_stderr([p[1] - ratio * p[0] for p in pairs])
    return None if se is None else 100.0 * se / abs(ref)


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _item_pairs(runs: Sequence[Mapping[str, Review]], ids: Sequence[str]) -> list[Pair]:
    """Per item, the mean pair over the runs that reviewed it."""
    out: list[Pair] = []
    for sid in ids:
        pairs = [pair for r in runs if sid in r and (pair := r[sid].pair) is not None]
        if pairs:
            out.append((sum(p[0] for p in pairs) / len(pairs), sum(p[1] for p in pairs) / len(pairs)))
    return out


def _relative_metric(summaries: Sequence[Summary | None], pairs: Sequence[Pair], description: str) -> Metric | None:
    """The mean over runs of the relative score (None when no run has one)."""
    value = _mean([s.relative for s in summaries if s is not None and s.relative is not None])
    if value is None:
        return None
    return make_metric(value, relative_stderr(pairs), len(pairs), description)


def _category_keys(categories: Mapping[str, str]) -> list[str]:
    return sorted({CATEGORY_PREFIX + c for c in categories.values()})


def _metrics(
    tables: Sequence[dict[str, Summary]], runs: Sequence[Mapping[str, Review]], categories: Mapping[str, str]
) -> dict[str, Metric]:
    ids = list(categories)
    metrics: dict[str, Metric | None] = {
        "relative": _relative_metric(
            [t.get(ALL) for t in tables],
            _item_pairs(runs, ids),
            "mean over runs of round(100 x model mean / reference mean, 1)",
        ),
    }
    for key in _category_keys(categories):
        short = key.removeprefix(CATEGORY_PREFIX)
        members = [sid for sid in ids if categories[sid] == short]
        metrics[f"relative_{short}"] = _relative_metric(
            [t.get(key) for t in tables], _item_pairs(runs, members), f"relative score, {short} questions"
        )
    for index, name in ((0, "reference_score"), (1, "model_score")):
        value = _mean([(t[ALL].reference, t[ALL].model)[index] * 10 for t in tables if ALL in t])
        metrics[name] = None if value is None else Metric(value=value, n=len(ids), description="mean score x 10")
    reviews = [r for run in runs for r in run.values()]
    metrics["judge_failures"] = Metric(
        value=float(sum(r.error is not None for r in reviews)),
        n=len(reviews),
        higher_is_better=False,
        description="reviews whose judge call failed (left out of their run)",
    )
    return {key: m for key, m in metrics.items() if m is not None}


def _breakdowns(tables: Sequence[dict[str, Summary]]) -> dict[str, dict[str, Metric]]:
    out: dict[str, dict[str, Metric]] = {}
    for j, table in enumerate(tables):
        rows: dict[str, Metric] = {}
        for key, s in table.items():
            name = key.removeprefix(CATEGORY_PREFIX)
            if s.relative is not None:
                rows[f"{name} relative"] = Metric(value=s.relative, n=s.n)
            rows[f"{name} reference x10"] = Metric(value=round(s.reference * 10, 1), n=s.n)
            rows[f"{name} model x10"] = Metric(value=round(s.model * 10, 1), n=s.n)
        out[f"run {j + 1}"] = rows
    return out


def _sample_score(sample: Sample, runs: Sequence[Mapping[str, Review]], why_not: str | None) -> SampleScore:
    detail: dict[str, Any] = {"category": sample.metadata["category"], "image": sample.metadata["image"]}
    if why_not is not None:
        detail["reviewed"] = f"no: {why_not}"
        return SampleScore(sample_id=sample.id, detail=detail)
    reviews = [run[sample.id] for run in runs]
    made = [r.pair for r in reviews if r.pair is not None]
    detail.update(
        tuples=[None if r.pair is None else list(r.pair) for r in reviews],
        reviews=[r.text for r in reviews],
        **judge_trail(reviews, [r.record for r in reviews]),
    )
    return SampleScore(
        sample_id=sample.id,
        parsed=[None if r.pair is None else list(r.pair) for r in reviews],
        score=_mean([p[1] for p in made]),
        parse_failed=any(r.unparsed for r in reviews),
        detail=detail,
    )


def _skip_reason(sample: Sample, responses: Mapping[str, Response]) -> str | None:
    """Why a sample is not reviewed: no reference line, no answer, or a model error."""
    if sample.metadata.get("reference") is None:
        return "no reference answer on its line of answers_gpt4.jsonl"
    response = responses.get(sample.id)
    if response is None:
        return "no answer"
    if response.error is not None:
        return "the model failed on it"
    return None


def _notes(
    runs: Sequence[Mapping[str, Review]],
    tables: Sequence[dict[str, Summary]],
    reviewer: Reviewer,
    skipped: Mapping[str, str],
) -> list[str]:
    reviews = [r for run in runs for r in run.values()]
    models = sorted({r.model for r in reviews if r.model}) or ["unknown model"]
    relatives = ", ".join("-" if ALL not in t or t[ALL].relative is None else f"{t[ALL].relative:.1f}" for t in tables)
    notes = [
        f"reviewed by {', '.join(models)} ({reviewer.name} reviewer): {len(tables)} run(s), relative "
        f"scores [{relatives}]"
    ]
    failed = sum(r.error is not None for r in reviews)
    if failed:
        notes.append(
            f"{failed} reviews failed in the judge call (transport) and were left out of their run (see judge_failures)"
        )
    unparsed = sum(r.unparsed for r in reviews)
    if unparsed:
        notes.append(
            f"{unparsed} reviews had no readable score pair: averaged in as (-1, -1), as the summarizer "
            "does (counted as parse failures)"
        )
    reasons: dict[str, int] = {}
    for why in skipped.values():
        reasons[why] = reasons.get(why, 0) + 1
    notes.extend(f"{n} questions not reviewed ({why}): left out of the means" for why, n in reasons.items())
    if any(t.get(key) is not None and t[key].relative is None for t in tables for key in t):
        notes.append("a mean reference score of 0 leaves that relative score undefined (the summarizer would fail)")
    return notes


def review_and_summarize(job: JudgedScoring) -> TaskResult:
    """Review every paired sample ``judge_runs`` times and summarize each run as LLaVA's summarizer does."""
    reviewer = reviewer_for(job.settings)
    n_runs = job.judge_runs(default=3)
    samples, responses = job.samples, job.responses
    skipped = {s.id: why for s in samples if (why := _skip_reason(s, responses)) is not None}
    kept = [s for s in samples if s.id not in skipped]
    messages = {s.id: review_messages(s, responses[s.id].text, reviewer) for s in kept}
    runs = review_all(job.judge, reviewer, messages, n_runs)
    categories = {s.id: str(s.metadata["category"]) for s in kept}
    tables = [summarize_run(run, categories) for run in runs]
    unparsed = sum(r.unparsed for run in runs for r in run.values())
    return task_result(
        job.header,
        _metrics(tables, runs, categories),
        [_sample_score(s, runs, skipped.get(s.id)) for s in samples],
        job.counts,
        _notes(runs, tables, reviewer, skipped),
        _breakdowns(tables),
        parse_failures=unparsed,
    )


score_llava_bench = needs_judge(review_and_summarize, "needs a judge (answers are reviewed by GPT-4; see --judge)")


# ---------------------------------------------------------------------------------------------
# Statistics


def estimands(records: Sequence[Record]) -> Estimands:
    """relative (all and per category) as the mean over review runs of 100 x model mean / reference mean,
    recomputed without the summarizer's rounding; questions are resampled by image, all runs together."""
    runs = max((len(detail(r, "tuples", [])) for r in records), default=0)
    sums = ColumnSums()
    names: dict[str, str] = {ALL: "relative"}
    for r in records:
        tuples = detail(r, "tuples")
        if tuples is None:
            continue
        category = str(detail(r, "category", meta(r, "category", "")))
        names.setdefault(category, f"relative_{category}")
        cluster = detail(r, "image", meta(r, "image", r["id"]))
        for j, pair in enumerate(tuples):
            if pair is None:
                continue
            for group in (ALL, category):
                sums.add(cluster, f"{group}:{j}:ref", float(pair[0]))
                sums.add(cluster, f"{group}:{j}:model", float(pair[1]))
    columns = sums.frozen()
    out: dict[str, Estimand] = {}
    for group, name in names.items():
        cols = {key: col for key, col in columns.items() if key.rsplit(":", 2)[0] == group}
        if cols:
            what = "mean over runs of 100 x model / reference"
            combine = percent_ratio_over_runs(group, runs, "model", "ref")
            out[name] = Estimand(name, combine, cols, "image", what)
    return Estimands(out)
