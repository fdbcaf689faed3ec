"""``harness plan``: how large a CI subset must be to detect a drop of a given size.

From a full run of the task (and, optionally, a second run of another model on the same samples):

- 0/1 per-sample scores with independent samples (ScienceQA, MMBench questions): the sample size of
  McNemar's test (Connor 1987), n = (z_a sqrt(p_d) + z_b sqrt(p_d - d^2))^2 / d^2, where p_d is the
  rate of discordant pairs. With ``--against`` it is measured; otherwise p_d = 2 p (1 - p) (1 - rho)
  for accuracy p and an assumed correlation rho between the two models' outcomes (``--correlation``).
- anything else (clustered samples, VQA scores, MME sums, judged means): the normal approximation
  n = (z_a + z_b)^2 s^2 / d^2 in clusters, where s^2 is the per-cluster variance of the paired
  difference: measured by the paired bootstrap with ``--against``, else 2 (1 - rho) times the
  per-cluster variance of the metric from the run's own bootstrap.

z_a is one-sided at ``--alpha`` (the gate's test); z_b is the ``--power`` quantile. The answer is in
clusters (what the bootstrap resamples) and in samples for ``--limit`` (clusters x mean size).
Stratified subsets usually do a little better than this (strata explain some variance).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from statistics import NormalDist
from typing import Any

from harness.errors import UsageError
from harness.results.loading import RunData, TaskData
from harness.stats.bootstrap import RESAMPLES, SEED, bootstrap, paired_bootstrap
from harness.stats.intervals import statistics_for, task_or_none

Z = NormalDist()


@dataclass
class Plan:
    task: str
    metric: str
    detect: float
    power: float
    alpha: float
    value: float
    stderr: float | None
    n_samples: int
    n_clusters: int
    unit: str
    formula: str
    variance_source: str
    clusters_needed: int
    samples_needed: int
    limit: int  # the --limit value to use (samples, or groups for tasks whose limit counts groups)
    limit_counts: str
    fits: bool  # whether the full run is big enough
    power_full: float  # the power the whole set gives
    discordance: float | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def connor_n(p_d: float, delta: float, alpha: float, power: float) -> float:
    """McNemar sample size for a one-sided test: discordance rate ``p_d``, difference ``delta`` (proportions)."""
    za, zb = Z.inv_cdf(1 - alpha), Z.inv_cdf(power)
    spread = max(p_d - delta * delta, 0.0)
    return (za * math.sqrt(p_d) + zb * math.sqrt(spread)) ** 2 / (delta * delta)


def normal_n(variance: float, delta: float, alpha: float, power: float) -> float:
    """Units needed when one unit's difference has variance ``variance`` (one-sided test)."""
    za, zb = Z.inv_cdf(1 - alpha), Z.inv_cdf(power)
    return (za + zb) ** 2 * variance / (delta * delta)


def achieved_power(variance: float, n: int, delta: float, alpha: float) -> float:
    if variance <= 0 or n <= 0:
        return 1.0 if variance <= 0 else 0.0
    return Z.cdf(delta / math.sqrt(variance / n) - Z.inv_cdf(1 - alpha))


def _check(detect: float, power: float, alpha: float, correlation: float) -> None:
    if not detect > 0:
        raise UsageError(f"--detect must be a positive size of drop, got {detect:g}")
    if not 0 < power < 1:
        raise UsageError(f"--power must be between 0 and 1, got {power:g}")
    if not 0 < alpha < 1:
        raise UsageError(f"--alpha must be between 0 and 1, got {alpha:g}")
    if not -1 <= correlation < 1:
        raise UsageError(f"--correlation must be in [-1, 1), got {correlation:g}")


def _task_data(run: RunData, task: str, flag: str) -> TaskData:
    if task not in run.tasks:
        raise UsageError(f"{flag}: run {run.label} has no task {task}; it has {', '.join(run.tasks) or 'none'}")
    data = run.tasks[task]
    if data.records is None:
        raise UsageError(f"{flag}: run {run.label} kept no samples log for {task}")
    return data


def plan_subset(
    run: RunData,
    task: str,
    detect: float,
    power: float = 0.8,
    alpha: float = 0.05,
    metric: str | None = None,
    against: RunData | None = None,
    correlation: float = 0.5,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> Plan:
    """The subset size that detects a drop of ``detect`` (metric units) with ``power`` at one-sided ``alpha``."""
    _check(detect, power, alpha, correlation)
    data = _task_data(run, task, "--run")
    records = data.records or []
    name = metric or (data.record.headline[0] if data.record.headline else "")
    if name not in data.record.metrics:
        raise UsageError(f"--metric: task {task} has no metric '{name}'; it has {', '.join(data.record.metrics)}")
    task_obj = task_or_none(task)
    stats = statistics_for(task_obj, data.record.version, records, data.record.metrics, [name])
    everything = stats.estimands(records)
    estimands = everything.restrict([name])
    if name not in estimands.metrics:
        raise UsageError(f"--metric: {task} {name} cannot be recomputed from per-sample records")
    estimand = estimands.metrics[name]
    interval = bootstrap(estimands, resamples, seed)[name]
    n_clusters = interval.n_clusters
    # A --limit subset covers every metric's clusters in proportion: size it so this metric gets enough.
    task_clusters = len(set().union(*(e.clusters() for e in everything.metrics.values())))
    n_samples = sum(1 for r in records if r.get("score") is not None) or len(records)
    per_cluster = n_samples / max(task_clusters, 1)
    share = n_clusters / max(task_clusters, 1)
    scale = estimand.scale
    plan_notes: list[str] = []
    discordance: float | None = None
    binary = estimand.binary and estimand.items is not None
    singletons = estimand.items is not None and n_clusters == len(estimand.items)
    if against is not None:
        other = _task_data(against, task, "--against")
        ids = {str(r["id"]) for r in other.records or []}
        paired = [r for r in records if str(r["id"]) in ids]
        other_records = [r for r in other.records or [] if str(r["id"]) in {str(p["id"]) for p in paired}]
        other_stats = statistics_for(task_obj, other.record.version, other.records or [], other.record.metrics, [name])
        est_b = other_stats.estimands(other_records).restrict([name])
        diff = paired_bootstrap(stats.estimands(paired).restrict([name]), est_b, resamples, seed).get(name)
        if diff is None or diff.stderr is None:
            raise UsageError(f"--against: no paired statistics for {task} {name} (no sample in common?)")
        variance = diff.stderr**2 * diff.n_clusters
        source = f"paired bootstrap against {against.label} ({diff.n_clusters} paired clusters)"
        if binary and singletons and estimand.items is not None:
            b_items = est_b.metrics[name].items or {}
            both = [(estimand.items[i][1], b_items[i][1]) for i in estimand.items if i in b_items]
            discordance = sum(1 for x, y in both if x != y) / max(len(both), 1)
    else:
        if interval.stderr is None:
            raise UsageError(f"--run: {task} {name} has fewer than 2 clusters; nothing to plan from")
        variance = 2 * (1 - correlation) * interval.stderr**2 * n_clusters
        source = (
            f"2 x (1 - {correlation:g}) x the per-cluster variance of {name} in {run.label} (assumed "
            "correlation between the two models' outcomes; pass --against RUN to measure it)"
        )
        if binary and singletons:
            p = interval.value / scale
            discordance = 2 * p * (1 - p) * (1 - correlation)
    delta = detect / scale
    if binary and singletons and discordance is not None and discordance > 0:
        needed = connor_n(discordance, delta, alpha, power)
        formula = "McNemar (Connor 1987), one-sided"
        variance_units = discordance * scale * scale
        source += f"; discordance rate {discordance:.3f}"
    else:
        needed = normal_n(variance, detect, alpha, power)
        formula = "normal approximation over clusters, one-sided"
        variance_units = variance
        if binary and singletons:
            plan_notes.append("no discordant outcomes expected: the normal approximation was used")
    clusters_needed = max(2, math.ceil(needed))
    task_clusters_needed = math.ceil(clusters_needed / share) if share > 0 else clusters_needed
    samples_needed = math.ceil(task_clusters_needed * per_cluster)
    limit_counts = task_obj.limit_counts if task_obj is not None else "samples"
    limit = task_clusters_needed if limit_counts == "groups" else samples_needed
    if variance_units == 0:
        plan_notes.append(f"{name} did not vary between resamples of this run: the size is a lower bound")
    fits = clusters_needed <= n_clusters
    full_power = achieved_power(variance_units, n_clusters, detect, alpha)
    if not fits:
        plan_notes.append(f"the full set ({n_clusters} {estimand.unit}s) is smaller than needed: "
                          f"it detects a drop of {detect:g} with power {full_power:.2f}")  # fmt: skip
    return Plan(
        task, name, detect, power, alpha, interval.value, interval.stderr, n_samples, n_clusters, estimand.unit,
        formula, source, clusters_needed, samples_needed, limit, limit_counts, fits, full_power, discordance,
        plan_notes,
    )  # fmt: skip


def plan_text(plan: Plan) -> str:
    unit = plan.unit + ("s" if plan.clusters_needed != 1 else "")
    limit_unit = "questions (whole groups)" if plan.limit_counts == "groups" else "samples"
    lines = [
        f"{plan.task} {plan.metric}: {plan.value:.2f}" + (f" ± {plan.stderr:.2f}" if plan.stderr is not None else "")
        + f" over {plan.n_clusters} {plan.unit}s (the run scored {plan.n_samples} samples)",
        f"to detect a drop of {plan.detect:g} with power {plan.power:g} (one-sided alpha {plan.alpha:g}):",
        f"  {plan.clusters_needed} {unit} for this metric, about {plan.samples_needed} samples in all: "
        f"use --limit {plan.limit} ({limit_unit}; a fixed stratified subset)",
        f"  formula: {plan.formula}",
        f"  variance: {plan.variance_source}",
        f"  the full set gives power {plan.power_full:.2f} for this drop",
    ]
    lines += [f"  note: {n}" for n in plan.notes]
    return "\n".join(lines) + "\n"
