"""``harness merge``: join the partial runs of ``harness run --shard I/N`` into one scored run.

The parts must be every shard 0..N-1 of one command (same spec, model fingerprint, protocol hash and data).
The samples are rebuilt as ``run`` builds them, the parts' answers must cover them exactly once, and each task
is scored by ``score_task`` as ``run`` scores it, so the merged run equals a run of one process.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.data.check import data_fingerprint, require_data
from harness.data.demo import ensure_demo_root
from harness.errors import UsageError
from harness.judging.setup import JudgeOptions
from harness.protocol import Protocol, load_protocol
from harness.registry import get_tasks
from harness.results.identity import RunIdentity
from harness.results.recorder import RunRecorder, new_result
from harness.results.records import read_records
from harness.results.schema import RESULTS_FILE, SAMPLES_DIR, DataInfo, RunResult, TaskRecord, Timing, load_results
from harness.run.evaluate import load_samples, score_task
from harness.task import Task
from harness.types import Response, Sample

__all__ = ["merge_runs"]

# What must agree across the parts: the spec fields of the command, and the identity fields of what ran.
SPEC_FIELDS = ("tasks", "model", "model_args", "batch_size", "limit", "data_root", "protocol", "seed", "no_judge")
IDENTITY_FIELDS = ("model_fingerprint", "protocol_hash", "data_fingerprints", "task_versions")


@dataclass
class Part:
    """One partial run: its directory, its results.json and its shard ``index`` of ``count``."""

    path: Path
    result: RunResult
    index: int
    count: int


def merge_runs(run_dirs: Sequence[str | Path], output_dir: str | Path | None, store_url: str | None,
               argv: Sequence[str]) -> Path:  # fmt: skip
    """Check, rebuild, score and record the parts as one complete run; returns its directory."""
    parts = [read_part(Path(d)) for d in run_dirs]
    check_parts(parts)
    first = parts[0].result
    tasks = get_tasks(",".join(first.spec.tasks))
    protocol = _protocol(parts[0])
    root = _data_root(parts[0], tasks)
    _check_current_code(parts[0], tasks, root)
    samples = load_samples(tasks, root, first.spec.limit, protocol)
    answers = {task.name: collect_answers(parts, task.name, samples[task.name]) for task in tasks}
    results_root = Path(output_dir) if output_dir is not None else parts[0].path.resolve().parent
    return _record(parts, tasks, protocol, root, samples, answers, results_root, store_url, list(argv))


# --- the parts and what they must share -----------------------------------------------------------------


def read_part(path: Path) -> Part:
    """A partial run directory; UsageError when it is not one."""
    if not (path / RESULTS_FILE).is_file():
        raise UsageError(f"{path}: no {RESULTS_FILE} (not a run directory)")
    result = load_results(path)
    if result.status != "partial":
        raise UsageError(f"{path}: status is '{result.status}', not 'partial' (merge joins the runs of --shard I/N)")
    index, count = _parse_shard(path, result.spec.shard)
    return Part(path, result, index, count)


def _parse_shard(path: Path, shard: str | None) -> tuple[int, int]:
    index, _, count = (shard or "").partition("/")
    if not (index.isdigit() and count.isdigit() and int(index) < int(count)):
        raise UsageError(f"{path}: spec.shard is {shard!r}, not I/N")
    return int(index), int(count)


def check_parts(parts: Sequence[Part]) -> None:
    """Every shard of one command, each once; UsageError naming the offending run dir and field."""
    if not parts:
        raise UsageError("merge needs the run directories of every shard")
    first = parts[0]
    for part in parts[1:]:
        if part.count != first.count:
            raise UsageError(f"{part.path}: spec.shard is {part.result.spec.shard}, but {first.path} is one of "
                             f"{first.count} shards ({first.result.spec.shard})")  # fmt: skip
    _check_indices(parts)
    for part in parts[1:]:
        for name, mine, theirs in _differences(first.result, part.result):
            raise UsageError(f"{part.path}: {name} is {_show(mine)}, but {first.path} has {_show(theirs)} "
                             "(the parts of a merge must come from one command)")  # fmt: skip


def _check_indices(parts: Sequence[Part]) -> None:
    seen: dict[int, Path] = {}
    for part in parts:
        if part.index in seen:
            raise UsageError(f"{part.path}: shard {part.index}/{part.count} given twice (also {seen[part.index]})")
        seen[part.index] = part.path
    missing = [f"{i}/{parts[0].count}" for i in range(parts[0].count) if i not in seen]
    if missing:
        given = ", ".join(f"{p.path} ({p.index}/{p.count})" for p in parts)
        raise UsageError(f"shard(s) {', '.join(missing)} missing: merge needs every shard once; given {given}")


def _differences(first: RunResult, other: RunResult) -> Iterator[tuple[str, Any, Any]]:
    """(field, other's value, first's value) of every spec or identity field in which ``other`` differs."""
    for name in SPEC_FIELDS:
        mine, theirs = getattr(other.spec, name), getattr(first.spec, name)
        if mine != theirs:
            yield f"spec.{name}", mine, theirs
    ours, base = RunIdentity.of(other), RunIdentity.of(first)
    for name in IDENTITY_FIELDS:
        mine, theirs = getattr(ours, name), getattr(base, name)
        if isinstance(mine, dict):
            for key in sorted(set(mine) | set(theirs)):
                if mine.get(key) != theirs.get(key):
                    yield f"{name}[{key}]", mine.get(key), theirs.get(key)
        elif mine != theirs:
            yield name, mine, theirs


def _show(value: Any, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


# --- what the merge rebuilds: protocol, data, samples ---------------------------------------------------


def _protocol(part: Part) -> Protocol:
    """The parts' protocol (the shipped name or file they recorded), unchanged since they ran."""
    info = part.result.protocol
    protocol = load_protocol((info.source or info.name) if info else part.result.spec.protocol)
    if info is not None and protocol.content_hash != info.content_hash:
        raise UsageError(f"{part.path}: protocol.content_hash {info.content_hash[:12]} differs from protocol "
                         f"{protocol.source} now ({protocol.content_hash[:12]}): it changed since the parts ran")
    return protocol


def _data_root(part: Part, tasks: list[Task]) -> Path:
    """The parts' data root; the demo root is regenerated when this machine has none."""
    root = Path(part.result.spec.data_root)
    if not root.is_dir():
        if not part.result.data.is_demo:
            raise UsageError(f"{part.path}: spec.data_root {root} is not a directory here (merge rebuilds the samples)")
        root = ensure_demo_root(tasks)
    require_data(tasks, root, "requests")  # the requests are rebuilt: question files, not images
    return root


def _check_current_code(part: Part, tasks: list[Task], root: Path) -> None:
    """The task versions and data fingerprints now are those the parts recorded."""
    recorded = part.result
    for task in tasks:
        record = _task_record(part, task.name)
        if record.version != task.version:
            raise UsageError(f"{part.path}: tasks[{task.name}].version is {record.version}, but the installed "
                             f"task is version {task.version}")  # fmt: skip
        if data_fingerprint(task, root) != recorded.data.fingerprints.get(task.name):
            raise UsageError(f"{part.path}: data_fingerprints[{task.name}] differs from the files under {root} now")


def _task_record(part: Part, task: str) -> TaskRecord:
    record = part.result.tasks.get(task)
    if record is None:
        raise UsageError(f"{part.path}: no record of task {task} in {RESULTS_FILE}")
    return record


# --- the answers ----------------------------------------------------------------------------------------


def collect_answers(parts: Sequence[Part], task: str, samples: list[Sample]) -> dict[str, Response]:
    """``{sample id: Response}`` from every part's samples log: disjoint, and covering ``samples`` exactly."""
    wanted = {s.id for s in samples}
    by_id: dict[str, Response] = {}
    source: dict[str, Path] = {}
    overlap: list[tuple[str, Path, Path]] = []
    for part in parts:
        record = _task_record(part, task)
        log = part.path / (record.samples_file or f"{SAMPLES_DIR}/{task}.jsonl")
        for line in read_records(log):
            if line.get("response") is None:
                continue
            sample_id = line["id"]
            if sample_id not in wanted:
                raise UsageError(f"{log}: sample id {sample_id} is not among the {len(wanted)} samples of task {task} "
                                 "rebuilt from the data (the data or --limit changed since the parts ran)")  # fmt: skip
            if sample_id in by_id:
                overlap.append((sample_id, source[sample_id], part.path))
            by_id[sample_id] = Response.from_json(line["response"])
            source[sample_id] = part.path
    _check_complete(task, samples, by_id, overlap)
    return by_id


def _check_complete(task: str, samples: list[Sample], by_id: dict[str, Response],
                    overlap: list[tuple[str, Path, Path]]) -> None:  # fmt: skip
    if overlap:
        sid, a, b = overlap[0]
        raise UsageError(f"task {task}: {len(overlap)} sample(s) answered by more than one part, e.g. id {sid} in "
                         f"{a} and {b}")  # fmt: skip
    missing = [s.id for s in samples if s.id not in by_id]
    if missing:
        raise UsageError(f"task {task}: {len(missing)} of {len(samples)} sample(s) have no answer in any part, "
                         f"e.g. id {missing[0]}")  # fmt: skip


# --- the merged run -------------------------------------------------------------------------------------


def _record(
    parts: Sequence[Part],
    tasks: list[Task],
    protocol: Protocol,
    root: Path,
    samples: dict[str, list[Sample]],
    answers: dict[str, dict[str, Response]],
    results_root: Path,
    store_url: str | None,
    argv: list[str],
) -> Path:
    """Score every task as ``run`` does (no judge) and record one complete run."""
    first = parts[0].result
    spec = first.spec.model_copy(update={
        "command": "run", "shard": None, "world_size": len(parts), "argv": argv,
        "output_dir": str(results_root.resolve()),
    })  # fmt: skip
    data = DataInfo(root=str(root), is_demo=first.data.is_demo)
    result = new_result(spec, first.model, data, first.protocol, git=first.git, env=first.environment)
    recorder = RunRecorder(results_root, store_url, result)
    judge_options = JudgeOptions()
    try:
        recorder.save()
        for task in tasks:
            start = time.perf_counter()
            settings = judge_options.settings(protocol.settings_for(task))
            task_samples, by_id = samples[task.name], answers[task.name]
            requests = {s.id: task.build_request(s, settings) for s in task_samples}
            scored = score_task(task, task_samples, by_id, settings, None, root, recorder.path)
            result.data.fingerprints[task.name] = first.data.fingerprints[task.name]  # checked against the files
            timing = merged_timing([_task_record(p, task.name).timing for p in parts], len(requests),
                                   time.perf_counter() - start)  # fmt: skip
            recorder.add_task(scored, task_samples, by_id, requests, protocol_settings=settings,
                              data_fingerprint=result.data.fingerprints[task.name], timing=timing)  # fmt: skip
            recorder.save()
        recorder.finish("complete")
    except BaseException as exc:
        recorder.finish("failed", f"{type(exc).__name__}: {exc}")
        raise
    finally:
        recorder.close()
    return recorder.path


def merged_timing(timings: Sequence[Timing], n_requests: int, score_seconds: float) -> Timing:
    """The parts' timings added up: generation time is their sum (process time, not wall time), so samples/s
    is the rate of one process; ``seconds`` adds the merge's scoring time."""
    generate = sum(t.generate_seconds for t in timings)
    generated = sum(t.n_generated for t in timings)
    return Timing(
        seconds=generate + score_seconds,
        generate_seconds=generate,
        n_requests=n_requests,
        n_generated=generated,
        n_cached=sum(t.n_cached for t in timings),
        samples_per_second=generated / generate if generated and generate > 0 else None,
        output_tokens=sum(t.output_tokens for t in timings),
    )
