"""Run details as frames: one row per task with counts, headline values and throughput."""

from __future__ import annotations

import pandas as pd

from harness.results.schema import RunResult


def task_table(result: RunResult) -> pd.DataFrame:
    rows = []
    for name, rec in result.tasks.items():
        head = rec.headline[0] if rec.headline else ""
        metric = rec.metrics.get(head)
        rows.append({
            "task": name, "version": rec.version, "headline": head,
            "value": metric.value if metric else None,
            "95% CI low": metric.ci_low if metric else None, "95% CI high": metric.ci_high if metric else None,
            "samples": rec.n_samples, "errors": rec.n_errors, "parse failures": rec.n_parse_failures,
            "missing": rec.n_missing, "seconds": rec.timing.seconds, "samples/s": rec.timing.samples_per_second,
            "generated": rec.timing.n_generated, "cached": rec.timing.n_cached,
            "output tokens": rec.timing.output_tokens,
            "judge calls": rec.judge_usage.calls if rec.judge_usage else None,
            "judge errors": rec.judge_usage.errors if rec.judge_usage else None,
        })  # fmt: skip
    return pd.DataFrame(rows)
