"""Statistics over per-sample records: bootstrap intervals, compare, gate, plan, baselines, subsets."""

RESAMPLES = 1000  # bootstrap resamples for intervals, compare and gate (light: the CLI's defaults read it)
