"""What compare, gate and plan read: a run (its directory or a store id) or a baseline file.

``load_run(text)`` accepts a run directory (or its results.json), a baseline JSON file written by
``harness gate --write-baseline``, or a run id in the results store. Per-sample records are read
from the run's samples logs when first asked for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import DataError, UsageError
from harness.results.identity import RunIdentity
from harness.results.records import read_records
from harness.results.schema import RESULTS_FILE, RunResult, TaskRecord, load_results

BASELINE_FORMAT = "harness-baseline"


@dataclass
class TaskData:
    """One task of a run: its record (version, headline, metrics) and where its per-sample records are."""

    name: str
    record: TaskRecord
    samples_path: Path | None = None
    _records: list[dict[str, Any]] | None = None

    @property
    def records(self) -> list[dict[str, Any]] | None:
        """The per-sample records (None when the run kept no samples log for this task)."""
        if self._records is None and self.samples_path is not None:
            if not self.samples_path.is_file():
                raise DataError(f"{self.samples_path}: samples log of task {self.name} not found")
            self._records = read_records(self.samples_path)
        return self._records


@dataclass
class RunData:
    """A run or baseline as compare and gate see it."""

    label: str  # the run id, or the baseline file's name
    source: str  # where it came from (a path or "store:<id>")
    kind: str  # "run" or "baseline"
    tasks: dict[str, TaskData]
    model: str = ""
    protocol: str = ""
    is_demo: bool = False
    info: dict[str, Any] = field(default_factory=dict)  # the run's identity (model spec, fingerprint, git...)


def _from_result(result: RunResult, run_dir: Path | None, source: str) -> RunData:
    tasks = {}
    for name, record in result.tasks.items():
        path = run_dir / record.samples_file if run_dir is not None and record.samples_file else None
        tasks[name] = TaskData(name, record, path)
    who = RunIdentity.of(result)
    return RunData(
        label=result.run_id,
        source=source,
        kind="run",
        tasks=tasks,
        model=who.model,
        protocol=who.protocol,
        is_demo=who.is_demo,
        info=who.model_dump(),
    )


def read_baseline(path: Path) -> RunData:
    """A baseline file (``harness gate --write-baseline``) as a run with compact per-sample records."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise DataError(f"{path}: not a readable baseline JSON file ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != BASELINE_FORMAT:
        raise DataError(f"{path}: not a harness baseline file (no \"format\": \"{BASELINE_FORMAT}\")")
    if data.get("format_version") != 1:
        raise DataError(f"{path}: baseline format_version {data.get('format_version')!r}; this harness reads 1")
    tasks = {}
    for name, entry in (data.get("tasks") or {}).items():
        try:
            record = TaskRecord.model_validate({k: v for k, v in entry.items() if k != "samples"} | {"task": name})
        except ValueError as exc:
            raise DataError(f"{path}: task {name}: {exc}") from exc
        samples = entry.get("samples")
        if not isinstance(samples, list) or not all(isinstance(s, dict) and "id" in s for s in samples):
            raise DataError(f"{path}: task {name}: 'samples' must be a list of objects with an 'id'")
        tasks[name] = TaskData(name, record, None, [dict(s, id=str(s["id"])) for s in samples])
    source = data.get("source") or {}
    return RunData(
        label=path.name,
        source=str(path),
        kind="baseline",
        tasks=tasks,
        model=str(source.get("model", "")),
        protocol=str(source.get("protocol", "")),
        is_demo=bool(source.get("is_demo_data")),
        info=dict(source),
    )


def _is_baseline(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8") as handle:
            head = handle.read(4096)
    except (OSError, UnicodeDecodeError):
        return False
    return BASELINE_FORMAT in head


def load_run(text: str, flag: str, store_url: str | None = None) -> RunData:
    """A run directory, its results.json, a baseline file, or a run id in the results store."""
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / RESULTS_FILE).is_file():
            raise UsageError(f"{flag}: '{path}' is a folder without {RESULTS_FILE} (not a run directory)")
        return _from_result(load_results(path), path, str(path))
    if path.is_file():
        if path.name == RESULTS_FILE:
            return _from_result(load_results(path.parent), path.parent, str(path.parent))
        if _is_baseline(path):
            return read_baseline(path)
        raise UsageError(f"{flag}: '{path}' is neither a run's {RESULTS_FILE} nor a baseline file")
    return _from_store(text, flag, store_url)


def _from_store(run_id: str, flag: str, store_url: str | None) -> RunData:
    from harness.results.store import ResultsStore, default_store_url

    url = store_url or default_store_url(Path("results"))
    if store_url is None and not (Path("results") / "harness.db").is_file():
        raise UsageError(f"{flag}: '{run_id}' is not a run directory or baseline file, and there is no results "
                         "store at results/harness.db (pass --store URL)")  # fmt: skip
    store = ResultsStore(url)
    try:
        result = store.get_run(run_id)
        row = store.run_row(run_id) if result is not None else None
    finally:
        store.close()
    if result is None:
        raise UsageError(f"{flag}: '{run_id}' is not a run directory, a baseline file or a run id in the store")
    run_dir = Path(row.run_dir) if row is not None and row.run_dir else None
    return _from_result(result, run_dir, f"store:{run_id}")
