"""``harness gate``: fail when a headline metric dropped by more than a tolerance AND significantly.

Each headline metric of each baseline task is compared with the candidate on the samples both have
(``harness.stats.compare``). A check fails when the drop on the paired samples is larger than its
tolerance (``--max-drop``, in the metric's own units: points for percentages, score points for MME)
and the one-sided test of "B is worse" rejects at ``--alpha`` (McNemar for 0/1 means, the paired
bootstrap otherwise). A headline metric missing from the candidate fails too; so does a task with no
sample in common. A baseline task the candidate did not run is skipped and named (the candidate may run
a part of the baseline's tasks, as the README's demo runs GQA and MME against CI's six-task baseline);
``require_all`` (``--require-all-tasks``) fails it instead, and a task named in ``tasks`` that the
candidate lacks always fails. A candidate that ran none of the baseline's tasks fails. Everything else
passes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from harness.errors import UsageError
from harness.results.loading import RunData
from harness.stats.bootstrap import RESAMPLES, SEED
from harness.stats.compare import MetricComparison, TaskComparison, compare_task, run_summary


@dataclass
class Check:
    """One task/metric of the gate."""

    task: str
    metric: str
    passed: bool
    reason: str
    max_drop: float
    comparison: MetricComparison | None = None
    skipped: bool = False  # a baseline task the candidate did not run (not a failure)


@dataclass
class GateResult:
    baseline: dict
    candidate: dict
    alpha: float
    checks: list[Check] = field(default_factory=list)
    tasks: list[TaskComparison] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks) and any(not c.skipped for c in self.checks)

    @property
    def skipped(self) -> list[Check]:
        return [c for c in self.checks if c.skipped]

    @property
    def not_run(self) -> list[str]:
        """Baseline tasks the candidate did not run (skipped checks), in the baseline's order."""
        return list(dict.fromkeys(c.task for c in self.skipped))

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]


def parse_tolerances(values: Sequence[str]) -> tuple[float, dict[str, float]]:
    """``--max-drop`` values: one number (the default tolerance) and/or ``TASK=X`` / ``TASK.METRIC=X``."""
    default = 1.0
    specific: dict[str, float] = {}
    for text in values:
        for part in (p.strip() for p in text.split(",") if p.strip()):
            key, _, number = part.rpartition("=")
            try:
                value = float(number)
            except ValueError:
                raise UsageError(f"--max-drop: '{part}' is not a number or NAME=NUMBER") from None
            if value < 0:
                raise UsageError(f"--max-drop: '{part}' is negative; a tolerance is 0 or more")
            if key:
                specific[key] = value
            else:
                default = value
    return default, specific


def tolerance(task: str, metric: str, default: float, specific: Mapping[str, float]) -> float:
    return specific.get(f"{task}.{metric}", specific.get(task, default))


def _fmt(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def judge(m: MetricComparison, max_drop: float, alpha: float) -> tuple[bool, str]:
    """(passed, why) for one compared metric."""
    worse = m.worse_by
    if worse is None:
        if m.a is None or m.b is None:
            return False, f"not tested ({m.verdict or 'no paired statistics'})"
        recorded = (m.a - m.b) if m.higher_is_better else (m.b - m.a)
        why = f"{m.verdict or 'not tested'}; recorded values changed by {_fmt(-recorded)}"
        return recorded <= max_drop, why + (f" (drop > {max_drop:g})" if recorded > max_drop else "")
    if m.p_worse is None:
        return worse <= max_drop, f"changed by {_fmt(-worse)}; no test possible (too few paired clusters)"
    direction = "dropped" if worse > 0 else "did not drop"
    test = f"{m.test} one-sided p = {_fmt(m.p_worse, 4)}"
    if worse > max_drop and m.p_worse < alpha:
        return False, f"{direction} by {_fmt(worse)} (> {max_drop:g}) significantly ({test} < {alpha:g})"
    if worse > max_drop:
        return True, f"{direction} by {_fmt(worse)} (> {max_drop:g}) but not significantly ({test} >= {alpha:g})"
    if worse > 0:
        return True, f"{direction} by {_fmt(worse)}, within the tolerance {max_drop:g} ({test})"
    return True, f"{direction} (change {_fmt(-worse)}; {test})"


def run_gate(
    baseline: RunData,
    candidate: RunData,
    tasks: Sequence[str] | None = None,
    max_drop: float = 1.0,
    tolerances: Mapping[str, float] | None = None,
    alpha: float = 0.05,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    require_all: bool = False,
) -> GateResult:
    """Check every headline metric of the baseline's tasks (or the ones named) in the candidate.

    A baseline task the candidate did not run is a skipped check unless ``require_all`` or the task was
    named in ``tasks`` (then it fails)."""
    tolerances = tolerances or {}
    names = list(tasks) if tasks else list(baseline.tasks)
    missing = [n for n in names if n not in baseline.tasks]
    if missing:
        raise UsageError(f"--tasks: {', '.join(missing)} not in the baseline; it has {', '.join(baseline.tasks)}")
    out = GateResult(run_summary(baseline), run_summary(candidate), alpha)
    if baseline.protocol and candidate.protocol and baseline.protocol != candidate.protocol:
        out.notes.append(f"protocols differ: baseline {baseline.protocol}, candidate {candidate.protocol}")
    for name in names:
        base = baseline.tasks[name]
        if name not in candidate.tasks:
            fail = require_all or bool(tasks)
            why = "task missing in the candidate" if fail else "not run by the candidate (skipped)"
            for metric in base.record.headline:
                out.checks.append(Check(name, metric, not fail, why, tolerance(name, metric, max_drop, tolerances),
                                        skipped=not fail))  # fmt: skip
            continue
        comparison = compare_task(name, base, candidate.tasks[name], resamples, seed)
        out.tasks.append(comparison)
        compared = {m.metric: m for m in comparison.metrics}
        for metric in base.record.headline:
            limit = tolerance(name, metric, max_drop, tolerances)
            m = compared.get(metric)
            if m is None:
                out.checks.append(Check(name, metric, False, "metric missing in the candidate", limit))
                continue
            if comparison.n_paired == 0 and comparison.n_a:
                out.checks.append(Check(name, metric, False, "no sample in common with the baseline", limit, m))
                continue
            passed, reason = judge(m, limit, alpha)
            out.checks.append(Check(name, metric, passed, reason, limit, m))
    if out.not_run:
        names_left = ", ".join(out.not_run)
        out.notes.append(f"baseline tasks the candidate did not run (skipped, not failed; --require-all-tasks "
                         f"fails them): {names_left}")
    if out.checks and all(c.skipped for c in out.checks):
        out.notes.append("the candidate ran none of the baseline's tasks: nothing was compared (a failure)")
    return out
