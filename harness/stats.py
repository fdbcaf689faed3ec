"""Standard errors and 95% intervals for the metrics tasks report.

Analytic forms: the standard error of a mean (cluster-robust when items share a cluster, such as
MME's two questions per image) and of a sum of independent stratum means (MME totals).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

from harness.types import Metric

Z95 = 1.959963984540054


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
    return make_metric(value, None if se is None else scale * se, n, description)


def sum_of_means_stderr(stratum_stderrs: Sequence[float | None]) -> float | None:
    """Standard error of a sum of independent stratum estimates."""
    if not stratum_stderrs or any(se is None for se in stratum_stderrs):
        return None
    return math.sqrt(sum(se * se for se in stratum_stderrs))  # type: ignore[operator]
