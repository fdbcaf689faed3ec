"""The one way a run is recorded, whoever made it (``run``, ``score``, ``import``): its directory
(results.json + one samples log per task) and its store entry, both rewritten after every task so
finished work is never lost."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.adapter import ModelInfo
from harness.protocol import Protocol
from harness.results.provenance import Environment, GitInfo, environment, git_info
from harness.results.schema import (
    DataInfo,
    ProtocolInfo,
    RunDirectory,
    RunResult,
    RunSpec,
    TaskRecord,
    new_run_id,
    task_record,
    utc_now,
)
from harness.results.store import ResultsStore, default_store_url
from harness.types import Request, Response, Sample, TaskResult


def protocol_info(protocol: Protocol) -> ProtocolInfo:
    return ProtocolInfo(
        name=protocol.name, version=protocol.version, description=protocol.description, source=protocol.source,
        content_hash=protocol.content_hash,
    )


def new_result(
    spec: RunSpec,
    model: ModelInfo,
    data: DataInfo,
    protocol: ProtocolInfo | None,
    run_id: str | None = None,
    created: str | None = None,
    git: GitInfo | None = None,
    env: Environment | None = None,
) -> RunResult:
    """A run's results.json content before any task: identity, provenance, status ``running``."""
    return RunResult(
        run_id=run_id or new_run_id(model.name),
        created=created or utc_now(),
        spec=spec,
        protocol=protocol,
        model=model,
        data=data,
        git=git if git is not None else git_info(),
        environment=env if env is not None else environment(),
    )


class RunRecorder:
    """Writes one run under ``<results_root>/<run_id>/`` and keeps its store entry in step."""

    def __init__(self, results_root: Path, store_url: str | None, result: RunResult) -> None:
        self.result = result
        self.directory = RunDirectory(Path(results_root), result.run_id)
        self.store = ResultsStore(store_url or default_store_url(Path(results_root)))

    @property
    def path(self) -> Path:
        return self.directory.path

    def add_task(
        self,
        scored: TaskResult,
        samples: Sequence[Sample],
        responses: Mapping[str, Response],
        requests: Mapping[str, Request] | None = None,
        write_samples: bool = True,
        records: list[dict[str, Any]] | None = None,
        **extra: Any,
    ) -> TaskRecord:
        """Write the task's samples log and put its record into the run (``save`` writes it out); ``records``:
        the log's lines where the caller built them already (``sample_records`` of the same arguments)."""
        rel = (
            self.directory.write_samples(scored.task, samples, scored, responses, requests, records)
            if write_samples else ""
        )  # fmt: skip
        record = task_record(scored, rel, **extra)
        self.result.tasks[record.task] = record
        return record

    def save(self) -> None:
        self.directory.write_results(self.result)
        self.store.record(self.result, self.directory.path)

    def finish(self, status: str = "complete", error: str | None = None) -> None:
        self.result.status = status  # type: ignore[assignment]
        if error:
            self.result.errors.append(error)
        self.result.finished = utc_now()
        self.save()

    def close(self) -> None:
        self.store.close()
