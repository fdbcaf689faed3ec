"""Statistics over per-sample records: bootstrap intervals, compare, gate, plan, baselines, subsets."""
