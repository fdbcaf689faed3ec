"""Bootstrap intervals, paired tests and fixed subsets: coverage by simulation, worked examples, and each
task's statistics recomputing its official numbers from per-sample records."""

from __future__ import annotations

import random
import time
from pathlib import Path

import numpy as np
import pytest

from harness.protocol import load_protocol
from harness.registry import get_task
from harness.results.records import compact, statistics_records
from harness.results.schema import sample_records
from harness.stats.analytic import binomial_cdf_half, mcnemar
from harness.stats.bootstrap import Estimands, bootstrap, mean_estimand, paired_bootstrap
from harness.stats.intervals import NO_INTERVAL, add_intervals, statistics_for
from harness.stats.subsets import stratified_subset
from harness.types import Metric, Response, Sample, TaskResult
from tasks.mme.scorer import ALL_SUBTASKS
from tasks.mme.scorer import estimands as mme_estimands

SIMULATIONS = 500


def covers(low: float | None, high: float | None, truth: float) -> bool:
    assert low is not None and high is not None
    return low <= truth <= high


# ----------------------------------------------------------------------------------------------
# coverage by simulation


def test_interval_of_a_mean_covers_the_truth_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(1)
    hits = 0
    for sim in range(SIMULATIONS):
        values = (rng.random(200) < 0.7).astype(float)
        estimand = mean_estimand("accuracy", [(str(i), i, v) for i, v in enumerate(values)])
        interval = bootstrap(Estimands({"accuracy": estimand}), seed=sim)["accuracy"]
        hits += covers(interval.low, interval.high, 70.0)
    assert 0.92 <= hits / SIMULATIONS <= 0.98


def _clustered_run(rng: np.random.Generator, clusters: int = 100, size: int = 4) -> list[tuple[str, int, float]]:
    """Questions of one image share a success probability drawn from Beta(1.2, 0.8) (mean 0.6, ICC 1/3)."""
    rows = []
    for c in range(clusters):
        p = rng.beta(1.2, 0.8)
        rows += [(f"{c}-{j}", c, float(rng.random() < p)) for j in range(size)]
    return rows


def test_cluster_bootstrap_covers_clustered_data_where_a_naive_one_does_not() -> None:
    rng = np.random.default_rng(2)
    clustered = naive = 0
    for sim in range(SIMULATIONS):
        rows = _clustered_run(rng)
        by_image = bootstrap(Estimands({"m": mean_estimand("m", rows)}), seed=sim)["m"]
        by_sample = bootstrap(Estimands({"m": mean_estimand("m", [(i, i, v) for i, _, v in rows])}), seed=sim)["m"]
        clustered += covers(by_image.low, by_image.high, 60.0)
        naive += covers(by_sample.low, by_sample.high, 60.0)
    assert 0.92 <= clustered / SIMULATIONS <= 0.98
    assert naive / SIMULATIONS < 0.90  # ignoring the clusters gives intervals that are too narrow


def test_paired_difference_interval_covers_a_known_effect() -> None:
    """A right with probability 0.65, B with 0.60, strongly correlated (shared latent): effect -5 points."""
    rng = np.random.default_rng(3)
    hits = 0
    for sim in range(SIMULATIONS):
        shared = rng.normal(size=300)
        a = (shared + 0.5 * rng.normal(size=300) < 0.4316).astype(float)  # P = Phi(0.4316 / sqrt(1.25)) = 0.65
        b = (shared + 0.5 * rng.normal(size=300) < 0.2832).astype(float)  # P = 0.60
        est_a = Estimands({"m": mean_estimand("m", [(str(i), i, v) for i, v in enumerate(a)])})
        est_b = Estimands({"m": mean_estimand("m", [(str(i), i, v) for i, v in enumerate(b)])})
        diff = paired_bootstrap(est_a, est_b, seed=sim)["m"]
        hits += covers(diff.low, diff.high, -5.0)
    assert 0.92 <= hits / SIMULATIONS <= 0.98


def _mme_records(rng: np.random.Generator, p: dict[str, float], pairs: int) -> list[dict]:
    records = []
    for sub in ALL_SUBTASKS:
        for k in range(pairs):
            for j in range(2):
                records.append({"id": f"{sub}/{k}#{j}", "score": float(rng.random() < p[sub]),
                                "detail": {"subtask": sub, "pair": f"{sub}/{k}"}})  # fmt: skip
    return records


def test_stratified_interval_of_mme_sums_covers_the_truth() -> None:
    """Each subtask's questions right with its own probability p (independent): score 100 (p + p^2)."""
    rng = np.random.default_rng(4)
    p = {sub: 0.5 + 0.03 * i for i, sub in enumerate(ALL_SUBTASKS)}
    truth = sum(100 * (p[s] + p[s] ** 2) for s in ALL_SUBTASKS[:10])  # perception
    hits = 0
    for sim in range(300):
        est = mme_estimands(_mme_records(rng, p, 25)).restrict(["perception"])
        interval = bootstrap(est, seed=sim)["perception"]
        hits += covers(interval.low, interval.high, truth)
    assert 0.92 <= hits / 300 <= 0.98


# ----------------------------------------------------------------------------------------------
# paired tests: worked examples


def test_mcnemar_exact_worked_example() -> None:
    # 9 samples right in A only, 2 right in B only (concordant ones do not count). Under no change the 11
    # discordant samples are Binomial(11, 1/2): P(X <= 2) = (1 + 11 + 55) / 2^11 = 67 / 2048 = 0.0327148...
    # two-sided p = 2 * 67/2048 = 0.0654297; one-sided "B worse" p = P(X >= 9) = P(X <= 2) = 0.0327148.
    pairs = [(f"s{i}", 1.0, 0.0) for i in range(9)] + [(f"t{i}", 0.0, 1.0) for i in range(2)]
    pairs += [(f"u{i}", 1.0, 1.0) for i in range(30)] + [(f"v{i}", 0.0, 0.0) for i in range(5)]
    test = mcnemar(pairs)
    assert (test.a_only, test.b_only) == (9, 2) and test.method.startswith("McNemar exact")
    assert test.p_two_sided == pytest.approx(134 / 2048, abs=1e-12)
    assert test.p_b_worse == pytest.approx(67 / 2048, abs=1e-12)
    assert test.p_b_better == pytest.approx(1 - 12 / 2048, abs=1e-12)  # P(X >= 2) = 1 - (1 + 11) / 2048
    # 1 vs 6: P(X <= 1) = (1 + 7) / 128 = 0.0625, two-sided 0.125
    small = mcnemar([("a", 1, 0)] + [(f"b{i}", 0, 1) for i in range(6)])
    assert small.p_two_sided == pytest.approx(0.125) and small.p_b_better == pytest.approx(0.0625)
    assert mcnemar([("a", 1, 1), ("b", 0, 0)]).p_two_sided == 1.0  # no discordant pair
    assert binomial_cdf_half(2, 11) == pytest.approx(67 / 2048)


def test_clustered_mcnemar_worked_example() -> None:
    # Per image (A-only minus B-only): img1 2-0 = 2, img2 1-1 = 0, img3 0-1 = -1, img4 3-0 = 3.
    # z = (2 + 0 - 1 + 3) / sqrt(4 + 0 + 1 + 9) = 4 / sqrt(14) = 1.06904; one-sided p = 1 - Phi(1.06904) = 0.14253,
    # two-sided 0.28505.
    pairs = [("img1", 1, 0), ("img1", 1, 0), ("img1", 1, 1),
             ("img2", 1, 0), ("img2", 0, 1),
             ("img3", 0, 1), ("img3", 0, 0),
             ("img4", 1, 0), ("img4", 1, 0), ("img4", 1, 0)]  # fmt: skip
    test = mcnemar(pairs)
    assert test.method.startswith("clustered McNemar") and (test.a_only, test.b_only) == (6, 2)
    assert test.statistic == pytest.approx(4 / 14**0.5)
    assert test.p_b_worse == pytest.approx(0.14253, abs=1e-4)
    assert test.p_two_sided == pytest.approx(0.28505, abs=1e-4)


def test_paired_bootstrap_p_values_point_the_right_way() -> None:
    a = [1.0] * 40 + [0.0] * 60
    b = [1.0] * 20 + [0.0] * 80  # B lost 20 of A's right answers
    est = [Estimands({"m": mean_estimand("m", [(str(i), i, v) for i, v in enumerate(x)])}) for x in (a, b)]
    diff = paired_bootstrap(est[0], est[1])["m"]
    assert diff.diff == pytest.approx(-20.0) and diff.high is not None and diff.high < 0
    assert diff.p_lower is not None and diff.p_lower < 0.01 and diff.p_higher is not None and diff.p_higher > 0.99
    same = paired_bootstrap(est[0], est[0])["m"]
    assert same.diff == 0.0 and same.low == same.high == 0.0 and same.p_two_sided == 1.0


def test_bootstrap_is_seeded_and_independent_of_record_order() -> None:
    rows = [(str(i), i % 17, float(i % 3 == 0)) for i in range(120)]
    one = bootstrap(Estimands({"m": mean_estimand("m", rows)}))["m"]
    two = bootstrap(Estimands({"m": mean_estimand("m", rows[::-1])}))["m"]
    assert (one.stderr, one.low, one.high) == (two.stderr, two.low, two.high)
    assert one.n_clusters == 17 and one.resamples == 1000


def test_full_size_mme_and_gqa_intervals_take_well_under_a_second() -> None:
    rng = np.random.default_rng(5)
    records = _mme_records(rng, dict.fromkeys(ALL_SUBTASKS, 0.7), 85)  # 2380 questions, as the real MME
    mme = TaskResult(task="mme", version="1", headline=["perception", "cognition"],
                     metrics={m: Metric(value=0.0) for m in ("perception", "cognition", "total")})  # fmt: skip
    gqa_records = [{"id": str(i), "score": float(rng.random() < 0.6), "detail": {},
                    "metadata": {"imageId": f"i{i % 398}", "structural": "query" if i % 3 else "verify"}}
                   for i in range(12578)]  # fmt: skip
    gqa = TaskResult(task="gqa", version="1", headline=["accuracy"],
                     metrics={m: Metric(value=0.0) for m in ("accuracy", "binary", "open")})  # fmt: skip
    for task, result, rows in ((get_task("mme"), mme, records), (get_task("gqa"), gqa, gqa_records)):
        stats = statistics_for(task, result.version, rows, result.metrics, result.headline)
        for name, interval in bootstrap(stats.estimands(), resamples=100).items():
            result.metrics[name].value = interval.value  # the values the scorer would have given
    start = time.perf_counter()
    add_intervals(get_task("mme"), mme, records)
    add_intervals(get_task("gqa"), gqa, gqa_records)
    assert time.perf_counter() - start < 1.0
    assert mme.metrics["perception"].stderr and "within each of 10 subtasks" in mme.metrics["perception"].method
    assert "1000 resamples of 398 images" in gqa.metrics["accuracy"].method


# ----------------------------------------------------------------------------------------------
# every task's statistics give its official numbers back


def _right_text(task: str, sample: Sample) -> str:
    if task in ("textvqa", "vqav2_val"):
        return str(sample.target[0])
    if task == "scienceqa":
        return "ABCDE"[int(sample.target)]
    return str(sample.target)


@pytest.fixture(scope="module")
def demo_root() -> Path:
    from harness.data.demo import ensure_demo_root
    from harness.registry import get_tasks

    return ensure_demo_root(get_tasks("gqa,mme,mmbench,scienceqa,textvqa,vqav2_val"))


@pytest.mark.parametrize("protocol", ["llava15", "lmms-eval"])
@pytest.mark.parametrize("name", ["gqa", "mme", "mmbench", "scienceqa", "textvqa", "vqav2_val"])
def test_statistics_recompute_the_official_values(demo_root: Path, name: str, protocol: str) -> None:
    task = get_task(name)
    settings = load_protocol(protocol).settings_for(task)
    samples = task.select(task.load(demo_root), settings)
    rng = random.Random(7)
    responses = {s.id: Response(text=_right_text(name, s) if rng.random() < 0.6 else "zebra") for s in samples}
    result = task.score(samples, responses, settings)
    records = sample_records(name, samples, result, responses)
    stats = statistics_for(task, result.version, records, result.metrics, result.headline)
    assert set(result.headline) <= set(stats.own)  # every headline metric: the task's own statistics
    intervals = bootstrap(stats.estimands(records))
    for metric, interval in intervals.items():
        assert interval.value == pytest.approx(result.metrics[metric].value, abs=1e-9), metric
        assert interval.stderr is not None and interval.stderr > 0, metric
    # a baseline file's compact records, and the records of a score that is not saved, describe the same numbers
    expected = {k: (v.value, v.stderr, v.low, v.high) for k, v in intervals.items()}
    unordered = statistics_records(samples, result.samples[::-1])  # scores found by id, not by position
    assert unordered == statistics_records(samples, result.samples)
    for small in ([compact(r, task.record_fields) for r in records], unordered):
        again = bootstrap(statistics_for(task, result.version, small, result.metrics, result.headline).estimands(small))
        assert {k: (v.value, v.stderr, v.low, v.high) for k, v in again.items()} == expected


def test_plain_mean_fallback_only_where_it_reproduces_the_value() -> None:
    records = [{"id": str(i), "score": float(i % 2)} for i in range(10)]
    metrics = {"score": Metric(value=50.0), "odd": Metric(value=12.0)}
    stats = statistics_for(None, "lmms-eval:1", records, metrics, ["score", "odd"])
    assert stats.plain == {"score": 100.0} and stats.own == []


# ----------------------------------------------------------------------------------------------
# fixed stratified subsets


def _items(n: int = 300) -> list[tuple[str, str, str]]:
    """(id, stratum, group): strata of 50 / 100 / 150 items, groups of two."""
    out = []
    for i in range(n):
        stratum = "a" if i < 50 else ("b" if i < 150 else "c")
        out.append((f"q{i}", stratum, f"g{i // 2}"))
    return out


def _subset(items: list[tuple[str, str, str]], limit: int) -> list[tuple[str, str, str]]:
    return stratified_subset(items, limit, lambda x: x[1], lambda x: x[2], "test")


def test_subset_is_proportional_nested_stable_and_keeps_groups() -> None:
    items = _items()
    sixty = _subset(items, 60)
    counts = {s: sum(1 for x in sixty if x[1] == s) for s in "abc"}
    assert counts == {"a": 10, "b": 20, "c": 30}  # strata in proportion
    groups = {}
    for x in sixty:
        groups.setdefault(x[2], []).append(x)
    assert all(len(members) == 2 for members in groups.values())  # never half a group
    shuffled = items[:]
    random.Random(3).shuffle(shuffled)
    assert {x[0] for x in _subset(shuffled, 60)} == {x[0] for x in sixty}  # the same ids whatever the order
    assert {x[0] for x in _subset(items, 30)} < {x[0] for x in sixty}  # a smaller subset is part of a larger one
    assert [x[0] for x in sixty] == [x[0] for x in items if x in sixty]  # in the items' order
    assert _subset(items, 0) == [] and len(_subset(items, 1000)) == 300
    first_n = {x[0] for x in items[:60]}
    assert {x[0] for x in sixty} != first_n  # not the first N


def test_no_interval_around_a_value_the_scorer_did_not_give(demo_root: Path) -> None:
    """Each metric is described once: when the task's statistics and its scorer disagree (here the recorded value
    is altered after scoring), no interval is reported and the method says why."""
    task = get_task("gqa")
    settings = load_protocol("llava15").settings_for(task)
    samples = task.load(demo_root)
    responses = {s.id: Response(text=_right_text("gqa", s)) for s in samples[: len(samples) // 2]}
    result = task.score(samples, responses, settings)
    records = sample_records("gqa", samples, result, responses)
    result.metrics["accuracy"].value += 1.0
    add_intervals(task, result, records)
    accuracy = result.metrics["accuracy"]
    assert accuracy.stderr is None and accuracy.ci_low is None
    assert accuracy.method.startswith(NO_INTERVAL) and "the scorer" in accuracy.method
    assert result.metrics["binary"].stderr is not None  # the other metrics keep their intervals
