"""Baseline files for ``harness gate``: a run's headline metrics and compact per-sample outcomes.

Schema (JSON, ``format_version`` 1)::

    {
      "format": "harness-baseline", "format_version": 1,
      "created": "<UTC ISO time>",
      "command": "python -m harness gate --write-baseline ...",   # how it was made
      "source": {"run_id", "model", "model_spec", "model_fingerprint", "protocol", "limit",
                 "is_demo_data", "data_fingerprints", "git_commit", "git_dirty"},
      "tasks": {
        "<task>": {
          "version": "1", "headline": ["accuracy"], "n_samples": 48, "n_errors": 0,
          "n_parse_failures": 0, "n_missing": 0,
          "metrics": {"<headline metric>": {"value", "stderr", "ci_low", "ci_high", "n",
                                            "higher_is_better", "description", "method"}},
          "samples": [{"id", "score", "correct", "answer", "question",
                       "metadata": {<Task.record_fields["metadata"]>},
                       "detail": {<Task.record_fields["detail"]>}}, ...]
        }
      }
    }

``samples`` keeps what the task's statistics read, so a gate against the file pairs samples and
recomputes every headline metric exactly as against the run itself.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.results.loading import BASELINE_FORMAT, RunData
from harness.results.records import compact
from harness.results.schema import utc_now
from harness.stats.intervals import task_or_none


def baseline_payload(run: RunData, tasks: Sequence[str] | None = None, command: str = "") -> dict[str, Any]:
    """The baseline file's content for a run (every task with a samples log, or the ones named)."""
    names = list(tasks) if tasks else list(run.tasks)
    unknown = [n for n in names if n not in run.tasks]
    if unknown:
        raise UsageError(f"--tasks: {', '.join(unknown)} not in run {run.label}; it has {', '.join(run.tasks)}")
    out: dict[str, Any] = {}
    for name in names:
        data = run.tasks[name]
        records = data.records
        if records is None or not data.record.headline:
            if tasks:
                raise UsageError(f"--tasks: {name} has no samples log or no headline metric in run {run.label}")
            continue
        task = task_or_none(name)
        fields = task.record_fields if task is not None else {}
        rec = data.record
        out[name] = {
            "version": rec.version,
            "headline": list(rec.headline),
            "n_samples": rec.n_samples,
            "n_errors": rec.n_errors,
            "n_parse_failures": rec.n_parse_failures,
            "n_missing": rec.n_missing,
            "metrics": {m: rec.metrics[m].model_dump() for m in rec.headline if m in rec.metrics},
            "samples": [compact(r, fields) for r in records],
        }
    if not out:
        raise UsageError(f"--write-baseline: run {run.label} has no task with a samples log and headline metrics")
    return {
        "format": BASELINE_FORMAT,
        "format_version": 1,
        "created": utc_now(),
        "command": command,
        "source": run.info,
        "tasks": out,
    }


def baseline_json(payload: dict[str, Any]) -> str:
    """Indented JSON with one line per sample (reviewable diffs when the baseline is regenerated)."""
    lines: dict[str, str] = {}
    shaped = json.loads(json.dumps(payload, default=str))
    for t, entry in enumerate(shaped["tasks"].values()):
        for i, sample in enumerate(entry["samples"]):
            marker = f"@@sample-{t}-{i}@@"
            lines[json.dumps(marker)] = json.dumps(sample, ensure_ascii=False)
            entry["samples"][i] = marker
    text = json.dumps(shaped, indent=1, ensure_ascii=False)
    for marker, line in lines.items():
        text = text.replace(marker, line, 1)
    return text + "\n"


def write_baseline(run: RunData, output: Path, tasks: Sequence[str] | None = None, command: str = "") -> Path:
    """Write the baseline file (atomically; compact JSON, one task per line block)."""
    payload = baseline_payload(run, tasks, command)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    tmp.write_text(baseline_json(payload), encoding="utf-8")
    os.replace(tmp, output)
    return output
