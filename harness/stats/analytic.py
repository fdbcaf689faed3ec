"""Standard errors and 95% intervals for the metrics tasks report.

Analytic forms: the standard error of a mean (cluster-robust when items share a cluster, such as
MME's two questions per image) and of a sum of independent stratum means (MME totals).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

from harness.types import Metric

Z95 = 1.959963984540054
ANALYTIC = "analytic standard error, normal-approximation 95% interval"
ANALYTIC_CLUSTERED = "analytic cluster-robust (CR1) standard error, normal-approximation 95% interval"


def _cluster_sums(values: Sequence[float], clusters: Sequence[Hashable] | None) -> list[float]:
    mean = sum(values) / len(values)
    if clusters is None:
        return [v - mean for v in values]
    sums: dict[Hashable, float] = {}
    for v, c in zip(values, clusters, strict=True):
        sums[c] = sums.get(c, 0.0) + (v - mean)
    return list(sums.values())


def mean_stderr(values: Sequence[float], clusters: Sequence[Hashable] | None = None) -> float | None:
    """Standard error of the mean of ``values``; cluster-robust (CR1) when ``clusters`` is given.

    Without clusters this is the sample standard deviation (n-1) over sqrt(n). None for n < 2.
    """
    n = len(values)
    if n < 2:
        return None
    resid = _cluster_sums(values, clusters)
    g = len(resid)
    if g < 2:
        return None
    return math.sqrt(g / (g - 1) * sum(r * r for r in resid)) / n


def make_metric(
    value: float,
    stderr: float | None,
    n: int,
    description: str = "",
    higher_is_better: bool = True,
    method: str = ANALYTIC,
) -> Metric:
    """A metric with a normal-approximation 95% interval."""
    if stderr is None:
        return Metric(value=value, n=n, description=description, higher_is_better=higher_is_better)
    return Metric(
        value=value,
        stderr=stderr,
        ci_low=value - Z95 * stderr,
        ci_high=value + Z95 * stderr,
        n=n,
        description=description,
        higher_is_better=higher_is_better,
        method=method,
    )


def mean_metric(
    values: Sequence[float],
    clusters: Sequence[Hashable] | None = None,
    scale: float = 100.0,
    description: str = "",
) -> Metric:
    """``scale`` x mean of per-item scores, with its standard error and interval (0 items: value 0)."""
    n = len(values)
    if n == 0:
        return Metric(value=0.0, n=0, description=description)
    value = scale * sum(values) / n
    se = mean_stderr(values, clusters)
    method = ANALYTIC if clusters is None else ANALYTIC_CLUSTERED
    return make_metric(value, None if se is None else scale * se, n, description, method=method)


def sum_of_means_stderr(stratum_stderrs: Sequence[float | None]) -> float | None:
    """Standard error of a sum of independent stratum estimates."""
    if not stratum_stderrs or any(se is None for se in stratum_stderrs):
        return None
    return math.sqrt(sum(se * se for se in stratum_stderrs))  # type: ignore[operator]


# ---------------------------------------------------------------------------------------------
# Paired tests of 0/1 outcomes


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def binomial_cdf_half(k: int, n: int) -> float:
    """P(X <= k) for X ~ Binomial(n, 1/2), summed in log space (n may be large)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    logs = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2.0) for i in range(k + 1)]
    top = max(logs)
    return min(1.0, math.exp(top) * sum(math.exp(v - top) for v in logs))


@dataclass(frozen=True)
class McNemar:
    """A paired test of 0/1 outcomes. ``a_only``: right in A only (B lost it); ``b_only``: right in B only."""

    a_only: int
    b_only: int
    p_two_sided: float
    p_b_worse: float  # one-sided, H1: B is right less often than A
    p_b_better: float  # one-sided, H1: B is right more often than A
    method: str
    statistic: float | None = None  # the clustered test's z


def mcnemar(pairs: Iterable[tuple[Hashable, float, float]]) -> McNemar:
    """McNemar's test on (cluster, outcome in A, outcome in B) with 0/1 outcomes.

    When every cluster holds one sample: the exact conditional test (the discordant pairs are
    Binomial(a_only + b_only, 1/2) under no change; two-sided p = 2 x the smaller tail, capped at 1;
    no continuity correction needed). When clusters hold several samples (questions of one image):
    Durkalski et al.'s clustered McNemar, z = sum_k d_k / sqrt(sum_k d_k^2) with d_k the cluster's
    (a_only - b_only), referred to the normal distribution; with one sample per cluster it equals the
    uncorrected McNemar statistic.
    """
    per_cluster: dict[Hashable, list[int]] = {}
    sizes: dict[Hashable, int] = {}
    for cluster, a, b in pairs:
        counts = per_cluster.setdefault(cluster, [0, 0])
        sizes[cluster] = sizes.get(cluster, 0) + 1
        if a >= 0.5 > b:
            counts[0] += 1
        elif b >= 0.5 > a:
            counts[1] += 1
    a_only = sum(c[0] for c in per_cluster.values())
    b_only = sum(c[1] for c in per_cluster.values())
    n = a_only + b_only
    if all(size == 1 for size in sizes.values()):
        if n == 0:
            return McNemar(0, 0, 1.0, 1.0, 1.0, "McNemar exact (binomial)")
        p_worse = 1.0 - binomial_cdf_half(a_only - 1, n)  # P(X >= a_only)
        p_better = 1.0 - binomial_cdf_half(b_only - 1, n)
        p_two = min(1.0, 2.0 * binomial_cdf_half(min(a_only, b_only), n))
        return McNemar(a_only, b_only, p_two, p_worse, p_better, "McNemar exact (binomial)")
    diffs = [c[0] - c[1] for c in per_cluster.values()]
    denominator = math.sqrt(sum(d * d for d in diffs))
    method = f"clustered McNemar (Durkalski), {len(per_cluster)} clusters"
    if denominator == 0:
        return McNemar(a_only, b_only, 1.0, 1.0, 1.0, method, 0.0)
    z = sum(diffs) / denominator
    return McNemar(a_only, b_only, min(1.0, 2.0 * normal_sf(abs(z))), normal_sf(z), normal_sf(-z), method, z)
