"""Compare two stored runs with ``harness.stats.compare`` (pairing by sample id, paired bootstrap interval,
McNemar or paired bootstrap test, flipped samples), and lay its result out as frames.

Nothing is recomputed here: every difference, interval, p-value and verdict is the compare code's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from harness.results.loading import RunData, load_run
from harness.results.store import ResultsStore
from harness.stats.compare import Comparison, Flip, TaskComparison, compare_runs
from leaderboard.samples import resolve_run_dir

MAX_FLIPS = 500  # flipped samples listed per task (the count is always complete)


def run_data(store: ResultsStore, url: str, run_id: str, run_dir: str) -> RunData:
    """A stored run as compare reads it: from its directory when it is here, else the store's record
    (recorded values only: no per-sample log, so no paired statistics)."""
    found = resolve_run_dir(run_dir, run_id, url)
    if found is not None:
        return load_run(str(found), "run")
    from harness.results import loading as rundata

    result = store.get_run(run_id)
    if result is None:
        from harness.errors import UsageError

        raise UsageError(f"run {run_id} is not in the store")
    return rundata._from_result(result, None, f"store:{run_id}")


@dataclass
class FlipView:
    """A changed sample with both runs' full records (for its image, question and answers)."""

    flip: Flip
    record_a: dict | None
    record_b: dict | None


@dataclass
class CompareView:
    comparison: Comparison
    flips: dict[str, list[FlipView]]  # task -> its changed samples


def compare(store: ResultsStore, url: str, a: tuple[str, str], b: tuple[str, str],
            tasks: Sequence[str] | None = None, max_flips: int = MAX_FLIPS) -> CompareView:
    """B - A for every task both runs have; ``a`` and ``b`` are (run id, recorded run directory)."""
    run_a, run_b = run_data(store, url, *a), run_data(store, url, *b)
    comparison = compare_runs(run_a, run_b, tasks=tasks, max_flips=max_flips)
    return CompareView(comparison, {t.task: flip_views(t, run_a, run_b) for t in comparison.tasks})


def metrics_frame(c: Comparison) -> pd.DataFrame:
    """One row per task and headline metric: A and B on the paired samples (what the difference is computed
    on), the paired difference, its interval, the test, and each run's whole-run value beside them."""
    rows = []
    for t in c.tasks:
        for m in t.metrics:
            paired = m.a_paired is not None or m.b_paired is not None
            rows.append({
                "task": t.task, "metric": m.metric, "A": m.a_paired if paired else None,
                "B": m.b_paired if paired else None, "Δ (B − A)": m.diff,
                "95% CI low": m.low, "95% CI high": m.high, "test": m.test, "p": m.p_value, "verdict": m.verdict,
                "paired samples": t.n_paired, "changed samples": t.n_flips,
                "A (whole run)": m.a, "B (whole run)": m.b, "A samples": t.n_a or None, "B samples": t.n_b or None,
            })  # fmt: skip
    return pd.DataFrame(rows)


def significant(c: Comparison) -> dict[tuple[str, str], str]:
    """(task, metric) -> "better" / "worse" where the interval excludes 0."""
    return {(t.task, m.metric): m.verdict for t in c.tasks for m in t.metrics if m.verdict in ("better", "worse")}


def flip_views(task: TaskComparison, a: RunData, b: RunData) -> list[FlipView]:
    """The task's changed samples (as compare lists them) with both full sample records."""
    data_a, data_b = a.tasks.get(task.task), b.tasks.get(task.task)
    recs_a = {str(r["id"]): r for r in (data_a.records or [])} if data_a and data_a.samples_path else {}
    recs_b = {str(r["id"]): r for r in (data_b.records or [])} if data_b and data_b.samples_path else {}
    return [FlipView(f, recs_a.get(f.id), recs_b.get(f.id)) for f in task.flips]

