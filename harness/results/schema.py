"""The run directory: ``results.json`` (typed schema) and ``samples/<task>.jsonl``.

results.json is rewritten (atomically) after every task, so finished work is never lost.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from harness.adapter import ModelInfo
from harness.results.provenance import Environment, GitInfo
from harness.types import Metric, Request, Response, Sample, TaskResult

SCHEMA_VERSION = 1
RESULTS_FILE = "results.json"
SAMPLES_DIR = "samples"


class RunSpec(BaseModel):
    """The command that produced the run, resolved (defaults filled in)."""

    command: Literal["run", "score", "import"]  # import: results of another harness
    tasks: list[str]
    model: str = ""
    model_args: dict[str, str] = Field(default_factory=dict)
    batch_size: int = 1
    limit: int | None = None
    data_root: str = ""
    output_dir: str = ""
    protocol: str = ""
    device: str | None = None
    seed: int = 0
    num_workers: int = 0
    answers: str | None = None  # score: the answers file that was scored
    no_judge: bool = False  # run --no-judge: judged tasks were generated but not scored
    world_size: int = 1  # processes that answered (torchrun and friends)
    shard: str | None = None  # "I/N": a partial run of every N-th batch from I (``harness merge`` joins them)
    argv: list[str] = Field(default_factory=list)


class ProtocolInfo(BaseModel):
    name: str
    version: str
    description: str = ""
    source: str = ""  # a shipped protocol's name or the path of the user's protocol file
    content_hash: str = ""  # of the resolved settings of every task (``Protocol.content_hash``)


class DataInfo(BaseModel):
    root: str
    is_demo: bool = False
    fingerprints: dict[str, str] = Field(default_factory=dict)  # task -> digest of its annotation files


class JudgeInfo(BaseModel):
    """The judge of a run (``--judge``). The API key is never recorded, only the variable it came from."""

    spec: str  # as given: "openai:gpt-4-0613" or "demo"
    name: str
    model: str  # the model requested
    base_url: str
    models_reported: list[str] = Field(default_factory=list)  # model ids the server reported in its replies
    runs: int | None = None  # --judge-runs (None: the protocol's own number of grading runs)
    concurrency: int = 1
    timeout: float = 0.0
    retries: int = 0
    api_key_env: str | None = None  # the variable the key was read from; None for the demo judge
    is_demo: bool = False  # the demo model served in-process: its grades are not a benchmark's


class JudgeUsage(BaseModel):
    """Judge calls one task made: answered by the endpoint, replayed from the cache, failed."""

    calls: int = 0
    cached: int = 0
    errors: int = 0


class Timing(BaseModel):
    seconds: float = 0.0  # wall time of the task (generation + scoring)
    generate_seconds: float = 0.0
    n_requests: int = 0
    n_generated: int = 0  # model calls made in this run
    n_cached: int = 0  # answers served from the response cache
    samples_per_second: float | None = None  # generated samples / generation wall time
    output_tokens: int = 0


class TaskRecord(BaseModel):
    task: str
    version: str
    protocol_settings: dict[str, Any] = Field(default_factory=dict)
    data_fingerprint: str = ""
    n_samples: int = 0
    n_errors: int = 0
    n_parse_failures: int = 0
    n_missing: int = 0
    headline: list[str] = Field(default_factory=list)
    metrics: dict[str, Metric] = Field(default_factory=dict)
    breakdowns: dict[str, dict[str, Metric]] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)
    timing: Timing = Field(default_factory=Timing)
    judge_usage: JudgeUsage | None = None  # None: no judge configured
    samples_file: str = ""


class RunResult(BaseModel):
    schema_version: int = SCHEMA_VERSION
    run_id: str
    status: Literal["running", "complete", "failed", "interrupted", "partial"] = "running"
    created: str
    finished: str | None = None
    spec: RunSpec
    protocol: ProtocolInfo | None = None
    model: ModelInfo | None = None
    judge: JudgeInfo | None = None
    data: DataInfo
    git: GitInfo
    environment: Environment
    tasks: dict[str, TaskRecord] = Field(default_factory=dict)
    errors: list[str] = Field(default_factory=list)


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_run_id(label: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in label)[:40].strip("-") or "run"
    return f"{stamp}-{safe}-{secrets.token_hex(3)}"


def task_record(result: TaskResult, samples_file: str, **extra: Any) -> TaskRecord:
    return TaskRecord(
        task=result.task,
        version=result.version,
        n_samples=result.n_samples,
        n_errors=result.n_errors,
        n_parse_failures=result.n_parse_failures,
        n_missing=result.n_missing,
        headline=list(result.headline),
        metrics=result.metrics,
        breakdowns=result.breakdowns,
        notes=list(result.notes),
        samples_file=samples_file,
        **extra,
    )


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


class RunDirectory:
    """Writes one run's files under ``<root>/<run_id>/``."""

    def __init__(self, root: Path, run_id: str) -> None:
        self.path = Path(root) / run_id
        (self.path / SAMPLES_DIR).mkdir(parents=True, exist_ok=True)

    def write_results(self, result: RunResult) -> None:
        _atomic_write(self.path / RESULTS_FILE, result.model_dump_json(indent=2))

    def samples_path(self, task: str) -> Path:
        return self.path / SAMPLES_DIR / f"{task}.jsonl"

    def write_samples(
        self,
        task: str,
        samples: Sequence[Sample],
        result: TaskResult,
        responses: Mapping[str, Response],
        requests: Mapping[str, Request] | None = None,
        records: list[dict[str, Any]] | None = None,
    ) -> str:
        """One line per scored sample; returns the path relative to the run directory. ``records``: the
        ``sample_records`` of these arguments where the caller built them already."""
        if records is None:
            records = sample_records(task, samples, result, responses, requests)
        lines = [json.dumps(record, ensure_ascii=False, default=str) for record in records]
        _atomic_write(self.samples_path(task), "\n".join(lines) + ("\n" if lines else ""))
        return f"{SAMPLES_DIR}/{task}.jsonl"


_RESPONSE_FIELDS = frozenset(f.name for f in fields(Response))


def _response_json(response: Response) -> dict[str, Any]:
    """``response.to_json()`` without ``dataclasses.asdict``'s recursive copy (every field is a scalar)."""
    values = response.__dict__ if type(response) is Response else None
    if values is None or values.keys() != _RESPONSE_FIELDS:  # a subclass, or an attribute added later
        return response.to_json()
    return values.copy()  # the fields in declaration order: __init__ sets them in that order


def sample_records(
    task: str,
    samples: Sequence[Sample],
    result: TaskResult,
    responses: Mapping[str, Response],
    requests: Mapping[str, Request] | None = None,
) -> list[dict[str, Any]]:
    """The samples-log lines of a scored task: one per sample (or, scored without sample objects such as
    an eval_tool folder, one per per-sample score)."""
    if not samples:
        return [{"id": s.sample_id, "task": task, **s.model_dump(exclude={"sample_id"})} for s in result.samples]
    scores = {s.sample_id: s for s in result.samples}
    records: list[dict[str, Any]] = []
    for sample in samples:
        score = scores.get(sample.id)
        response = responses.get(sample.id)
        request = requests.get(sample.id) if requests else None
        records.append({
            "id": sample.id,
            "task": task,
            "question": sample.question,
            "target": sample.target,
            "metadata": sample.metadata,
            "request": request.describe() if request else None,
            "response": _response_json(response) if response else None,
            "parsed": score.parsed if score else None,
            "score": score.score if score else None,
            "correct": score.correct if score else None,
            "parse_failed": score.parse_failed if score else False,
            "detail": score.detail if score else {},
        })  # fmt: skip
    return records


def load_results(run_dir: Path) -> RunResult:
    """A run's results.json; DataError naming the file and the first bad field when it is not one."""
    from pydantic import ValidationError

    from harness.data.readers import read_json
    from harness.errors import DataError

    path = Path(run_dir) / RESULTS_FILE
    try:
        return RunResult.model_validate(read_json(path))
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        raise DataError(f"{path}: field '{where}': {error['msg']} ({exc.error_count()} problem(s))") from exc


def iter_headlines(result: RunResult) -> Iterable[tuple[str, str, Metric]]:
    for name, record in result.tasks.items():
        for metric in record.headline:
            if metric in record.metrics:
                yield name, metric, record.metrics[metric]
