"""``harness compare A B``: per task and headline metric, B - A on the samples both runs scored.

Samples are paired by id (ids in one run only are counted, not used). For each headline metric:
the difference on the paired samples with a 95% interval from a paired cluster bootstrap (the same
resampled clusters for both runs; composites such as MME's sums are recomputed), and a paired test:
McNemar's exact test for means of 0/1 per-sample scores (the clustered McNemar of Durkalski et al.
where clusters hold several samples), a paired bootstrap p-value otherwise. An interval that covers
0 reads "no detectable change". The samples whose score changed are listed with both answers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.errors import UsageError
from harness.results.loading import RunData, TaskData
from harness.results.records import Record, answer_text, shorten
from harness.stats.analytic import mcnemar
from harness.stats.bootstrap import RESAMPLES, SEED, Difference, Estimand, paired_bootstrap
from harness.stats.intervals import statistics_for, task_or_none

NO_CHANGE = "no detectable change"
MAX_FLIPS = 20


@dataclass
class MetricComparison:
    task: str
    metric: str
    higher_is_better: bool
    a: float | None  # the recorded value of each run (all its samples)
    b: float | None
    a_paired: float | None = None  # recomputed on the paired samples
    b_paired: float | None = None
    diff: float | None = None  # b_paired - a_paired
    low: float | None = None
    high: float | None = None
    stderr: float | None = None
    test: str = ""
    p_value: float | None = None  # two-sided
    p_worse: float | None = None  # one-sided, H1: B worse than A (lower, or higher when lower is better)
    a_only: int | None = None  # McNemar: right in A only
    b_only: int | None = None  # McNemar: right in B only
    method: str = ""
    verdict: str = ""
    bootstrap_p_value: float | None = None

    @property
    def worse_by(self) -> float | None:
        """How much worse B is than A on the paired samples (negative: better)."""
        if self.diff is None:
            return None
        return -self.diff if self.higher_is_better else self.diff


@dataclass
class Flip:
    id: str
    question: str
    answer_a: str
    answer_b: str
    score_a: float
    score_b: float


@dataclass
class TaskComparison:
    task: str
    version_a: str
    version_b: str
    n_a: int  # samples with a record in each run
    n_b: int
    n_paired: int
    only_a: int
    only_b: int
    metrics: list[MetricComparison] = field(default_factory=list)
    flips: list[Flip] = field(default_factory=list)
    n_flips: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass
class Comparison:
    a: dict[str, Any]
    b: dict[str, Any]
    tasks: list[TaskComparison]
    resamples: int
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return _clean(asdict(self))


def _clean(value: Any) -> Any:
    """NaN / infinity become None (JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def run_summary(run: RunData) -> dict[str, Any]:
    return {"label": run.label, "source": run.source, "kind": run.kind, "model": run.model,
            "protocol": run.protocol, "is_demo": run.is_demo}  # fmt: skip


def _binary_items(estimand: Estimand) -> Mapping[str, tuple[str, float]] | None:
    """The per-sample outcomes of a mean of 0/1 scores (None for anything else)."""
    if estimand.items is None or not estimand.binary or not all(v in (0.0, 1.0) for _, v in estimand.items.values()):
        return None
    return estimand.items


def _verdict(m: MetricComparison) -> str:
    if m.low is None or m.high is None or m.diff is None:
        return "no interval (too few paired clusters)"
    if m.low <= 0.0 <= m.high:
        return NO_CHANGE
    better = (m.diff > 0) == m.higher_is_better
    return "better" if better else "worse"


def compare_metric(
    task: str, name: str, a: TaskData, b: TaskData, est_a: Estimand, est_b: Estimand, diffs: dict[str, Difference]
) -> MetricComparison:
    """Fill one metric's comparison from the paired bootstrap and, for 0/1 means, McNemar."""
    metric_a, metric_b = a.record.metrics.get(name), b.record.metrics.get(name)
    higher = metric_a.higher_is_better if metric_a is not None else True
    value_a, value_b = (m.value if m is not None else None for m in (metric_a, metric_b))
    out = MetricComparison(task, name, higher, value_a, value_b)
    diff = diffs[name]
    out.a_paired, out.b_paired, out.diff = diff.value_a, diff.value_b, diff.diff
    out.low, out.high, out.stderr, out.method = diff.low, diff.high, diff.stderr, diff.method
    out.bootstrap_p_value = diff.p_two_sided
    out.test, out.p_value = "paired bootstrap", diff.p_two_sided
    out.p_worse = diff.p_lower if higher else diff.p_higher
    items_a, items_b = _binary_items(est_a), _binary_items(est_b)
    if items_a is not None and items_b is not None:
        pairs = [(items_a[sid][0], items_a[sid][1], items_b[sid][1]) for sid in items_a if sid in items_b]
        if pairs:
            test = mcnemar(pairs)
            out.test, out.p_value, out.a_only, out.b_only = test.method, test.p_two_sided, test.a_only, test.b_only
            out.p_worse = test.p_b_worse if higher else test.p_b_better
    out.verdict = _verdict(out)
    return out


def _flips(a: Sequence[Record], b: Sequence[Record], limit: int, higher: bool) -> tuple[list[Flip], int]:
    """Paired samples whose score changed, losses first (largest change first), at most ``limit``."""
    by_id = {str(r["id"]): r for r in b}
    changed: list[Flip] = []
    for ra in a:
        rb = by_id.get(str(ra["id"]))
        if rb is None or ra.get("score") is None or rb.get("score") is None:
            continue
        sa, sb = float(ra["score"]), float(rb["score"])
        if abs(sa - sb) > 1e-9:
            question = shorten(str(ra.get("question") or rb.get("question") or ""))
            changed.append(Flip(str(ra["id"]), question, answer_text(ra), answer_text(rb), sa, sb))
    sign = 1.0 if higher else -1.0
    changed.sort(key=lambda f: (sign * (f.score_b - f.score_a), f.id))
    return changed[:limit], len(changed)


def _untested(task: str, name: str, a: TaskData, b: TaskData, why: str) -> MetricComparison:
    ma, mb = a.record.metrics[name], b.record.metrics[name]
    return MetricComparison(task, name, ma.higher_is_better, ma.value, mb.value, verdict=why)


def compare_task(
    name: str, a: TaskData, b: TaskData, resamples: int = RESAMPLES, seed: int = SEED, max_flips: int = MAX_FLIPS
) -> TaskComparison:
    """One task of two runs: paired samples, each headline metric, flipped samples."""
    records_a, records_b = a.records, b.records
    out = TaskComparison(name, a.record.version, b.record.version, 0, 0, 0, 0, 0)
    headline = [m for m in a.record.headline if m in a.record.metrics and m in b.record.metrics]
    if a.record.version != b.record.version:
        out.notes.append(f"task versions differ: A {a.record.version}, B {b.record.version}")
    if records_a is None or records_b is None:
        which = " and ".join(x for x, r in (("A", records_a), ("B", records_b)) if r is None)
        out.notes.append(f"no per-sample log in {which}: recorded values only, no paired statistics")
        out.metrics = [_untested(name, m, a, b, "not tested (no per-sample log)") for m in headline]
        return out
    ids_a, ids_b = {str(r["id"]) for r in records_a}, {str(r["id"]) for r in records_b}
    common = ids_a & ids_b
    out.n_a, out.n_b, out.n_paired = len(ids_a), len(ids_b), len(common)
    out.only_a, out.only_b = len(ids_a - common), len(ids_b - common)
    task = task_or_none(name)
    stats_a = statistics_for(task, a.record.version, records_a, a.record.metrics, a.record.headline)
    stats_b = statistics_for(task, b.record.version, records_b, b.record.metrics, b.record.headline)
    paired_a = [r for r in records_a if str(r["id"]) in common]
    paired_b = [r for r in records_b if str(r["id"]) in common]
    est_a, est_b = stats_a.estimands(paired_a), stats_b.estimands(paired_b)
    testable = [m for m in headline if m in est_a.metrics and m in est_b.metrics]
    diffs = paired_bootstrap(est_a.restrict(testable), est_b.restrict(testable), resamples, seed)
    for m in headline:
        if m in diffs:
            out.metrics.append(compare_metric(name, m, a, b, est_a.metrics[m], est_b.metrics[m], diffs))
        else:
            out.metrics.append(_untested(name, m, a, b, "not tested (no per-sample statistics for this metric)"))
    higher = a.record.metrics[headline[0]].higher_is_better if headline else True
    out.flips, out.n_flips = _flips(paired_a, paired_b, max_flips, higher)
    if not common:
        out.notes.append("no sample id is in both runs: nothing to pair")
    return out


def compare_runs(
    a: RunData,
    b: RunData,
    tasks: Sequence[str] | None = None,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    max_flips: int = MAX_FLIPS,
) -> Comparison:
    """Every task both runs have (or the ones named), in A's order."""
    if tasks:
        for name in tasks:
            for label, run in (("A", a), ("B", b)):
                if name not in run.tasks:
                    raise UsageError(f"--tasks: {name} is not in {label} ({run.label}); it has {', '.join(run.tasks)}")
        names = list(tasks)
    else:
        names = [n for n in a.tasks if n in b.tasks]
    out = Comparison(run_summary(a), run_summary(b), [], resamples)
    for label, run, other in (("A", a, b), ("B", b, a)):
        missing = [n for n in run.tasks if n not in other.tasks]
        if missing and not tasks:
            out.notes.append(f"only in {label}: {', '.join(missing)}")
    if a.protocol and b.protocol and a.protocol != b.protocol:
        out.notes.append(f"protocols differ: A {a.protocol}, B {b.protocol}")
    for name in names:
        out.tasks.append(compare_task(name, a.tasks[name], b.tasks[name], resamples, seed, max_flips))
    return out
