"""Bootstrap standard errors and intervals for a task's metrics, from its per-sample records.

``statistics_for`` decides how each metric is recomputed: the task's own ``Task.statistics`` for
records its scorer wrote, else (an imported run, a plugin task without statistics) a plain mean of
per-sample scores, used only where that mean reproduces the recorded value. ``add_intervals`` puts
the bootstrap results into the task result's metrics, saying which method each one used.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from harness.results.records import Record, mean_of, scored
from harness.stats.bootstrap import RESAMPLES, SEED, Estimands, bootstrap
from harness.task import Task
from harness.types import Metric, TaskResult

NO_INTERVAL = "no bootstrap interval: "


def task_or_none(name: str) -> Task | None:
    """The registered task of that name, or None (an imported task kept under its own name)."""
    from harness.errors import HarnessError
    from harness.registry import get_task

    try:
        return get_task(name)
    except HarnessError:
        return None


def native(version: str) -> bool:
    """Whether a task version is one of ours (imported results carry "source:version")."""
    return ":" not in version


@dataclass
class Statistics:
    """How a run's metrics of one task are recomputed from any subset of its records."""

    task: Task | None
    own: list[str] = field(default_factory=list)  # metrics the task's statistics describe
    plain: dict[str, float] = field(default_factory=dict)  # metric -> scale of a plain mean of scores
    described: Estimands | None = None  # the task's statistics of the full records (computed once)
    records: Sequence[Record] = ()  # the full records

    def estimands(self, records: Sequence[Record] | None = None) -> Estimands:
        """The estimands of ``records`` (a subset, for compare and plan); None: of the full records."""
        if records is None and self.described is not None:
            est = self.described.restrict(self.own)
        elif self.task is not None and self.own and records is not None:
            est = self.task.statistics(records).restrict(self.own)
        else:
            est = Estimands()
        for name, scale in self.plain.items():
            est.metrics[name] = mean_of(name, scored(records if records is not None else self.records), scale=scale)
        return est

    def names(self) -> list[str]:
        return [*self.own, *self.plain]


def _plain_scale(records: Sequence[Record], metric: Metric) -> float | None:
    """100 or 1 when that multiple of the mean per-sample score is the metric's value, else None."""
    values = [float(r["score"]) for r in scored(records)]
    if not values:
        return None
    mean = sum(values) / len(values)
    for scale in (100.0, 1.0):
        if abs(scale * mean - metric.value) <= 1e-6 * max(1.0, abs(metric.value)):
            return scale
    return None


def statistics_for(
    task: Task | None, version: str, records: Sequence[Record], metrics: Mapping[str, Metric], headline: Sequence[str]
) -> Statistics:
    """The recomputation of a task's metrics, decided on the full records of the run."""
    stats = Statistics(task, records=records)
    if task is not None and native(version):
        stats.described = task.statistics(records)
        stats.own = [name for name in metrics if name in stats.described.metrics]
    for name in headline:
        if name in metrics and name not in stats.own:
            scale = _plain_scale(records, metrics[name])
            if scale is not None:
                stats.plain[name] = scale
    return stats


# Official scorers that round (LLaVA-Bench and MM-Vet print one decimal) differ from the unrounded
# recomputation by at most half a unit of their last digit.
ROUNDING = 0.05 + 1e-9


def _agrees(point: float, value: float) -> bool:
    """Whether the task's statistics recompute the scorer's value (up to the official rounding)."""
    return abs(point - value) <= ROUNDING or (math.isnan(point) and math.isnan(value))


def add_intervals(
    task: Task | None, result: TaskResult, records: Sequence[Record], resamples: int = RESAMPLES, seed: int = SEED
) -> None:
    """Replace the standard error and interval of every metric the records describe by the bootstrap's."""
    stats = statistics_for(task, result.version, records, result.metrics, result.headline)
    intervals = bootstrap(stats.estimands(), resamples, seed)
    for name, interval in intervals.items():
        metric = result.metrics[name]
        if not _agrees(interval.value, metric.value):
            # One description per metric: an interval is only reported around the value the scorer gave.
            metric.method = NO_INTERVAL + f"the task's statistics give {interval.value!r}, the scorer {metric.value!r}"
            metric.stderr = metric.ci_low = metric.ci_high = None
            continue
        if interval.stderr is None:
            metric.method = NO_INTERVAL + f"{interval.n_clusters} cluster(s)"
            metric.stderr = metric.ci_low = metric.ci_high = None
            continue
        metric.stderr, metric.ci_low, metric.ci_high = interval.stderr, interval.low, interval.high
        metric.method = interval.method
        if interval.undefined:
            metric.method += f" ({interval.undefined} resamples undefined, left out)"
    for name in result.headline:
        metric = result.metrics.get(name)
        if metric is not None and name not in intervals and metric.stderr is None:
            metric.method = NO_INTERVAL + "the metric is not a plain mean of per-sample scores and the task " \
                "describes no statistics for it"
