"""Whether a scored task has its number: the reason it does not, and how many judge calls failed.

A task whose headline metric could not be computed (every judge call failed, no sample had an answer,
nothing to score) has failed, whatever else went right: the run or ``score`` ends with status
``failed`` and a non-zero exit, and the table says why.
"""

from __future__ import annotations

from harness.results.schema import JudgeUsage, TaskRecord
from harness.types import TaskResult

Scored = TaskResult | TaskRecord


def judge_failures(record: Scored) -> tuple[int, int] | None:
    """(failed, attempted) gradings whose judge call failed, where the task reports them and some failed."""
    metric = record.metrics.get("judge_failures")
    if metric is None or not metric.value:
        return None
    return int(metric.value), int(metric.n or 0)


def _all_unreadable(record: Scored) -> tuple[int, int] | None:
    """(unreadable, failed) gradings when no grading gave a readable grade, else None.

    Only judged tasks report ``judge_failures``; theirs count parse failures in gradings too (an
    unreadable grade is scored as the official code does: MM-Vet 0, LLaVA-Bench (-1, -1)), so the two
    add up to the gradings attempted."""
    metric = record.metrics.get("judge_failures")
    if metric is None or not metric.n or not record.n_parse_failures:
        return None
    failed = int(metric.value or 0)
    return (record.n_parse_failures, failed) if record.n_parse_failures + failed >= int(metric.n) else None


def scoring_failure(
    record: Scored, judge_usage: JudgeUsage | None = None, answered: int | None = None
) -> str | None:
    """Why the task has no headline number (None when it has them all). ``answered`` (samples with an answer
    that is no error, where the caller knows it) fails a task that had nothing to score; ``judge_usage`` (a
    record's own by default) adds how many judge calls failed."""
    if answered is not None and answered <= 0:
        return f"{record.task}: no sample has an answer to score ({record.n_missing} missing, {record.n_errors} errors)"
    if record.n_samples == 0:
        return f"{record.task}: nothing to score (no samples: an empty question file, or no answer matched a question)"
    missing = [name for name in record.headline if name not in record.metrics]
    failed = judge_failures(record)
    unreadable = _all_unreadable(record)
    if (failed is not None and failed[0] >= failed[1]) or unreadable:  # no grade read: the number is no score
        missing = missing or list(record.headline)
    if not missing:
        return None
    reason = f"{record.task}: {', '.join(missing)} could not be computed"
    usage = judge_usage or getattr(record, "judge_usage", None)
    if unreadable:
        reason += f" (no grade of the judge could be read: {unreadable[0]} unreadable, {unreadable[1]} failed calls)"
    elif failed is not None:
        reason += f" (the judge failed on {failed[0]} of {failed[1]} gradings)"
    elif usage is not None and usage.errors:
        reason += f" ({usage.errors} of {usage.calls} judge calls failed)"
    return reason
