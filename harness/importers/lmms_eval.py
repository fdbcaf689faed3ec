"""``harness import lmms-eval PATH``: lmms-eval results and samples files as our runs.

lmms-eval writes ``{output}/{model}/{date}_results.json`` and, with ``--log_samples``,
``{date}_samples_{task}.jsonl`` next to it. Each results file becomes one run (``spec.command``
"import", protocol "lmms-eval") with a run directory (results.json, samples/<task>.jsonl) and a store
entry. Importing the same file again replaces its run: the run id derives from the file's content.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.adapter import ModelInfo
from harness.data.readers import iter_jsonl, read_json
from harness.errors import DataError, UsageError
from harness.importers.lmms_eval_names import MetricMap, metric_map, our_task, split_key
from harness.results.provenance import Environment, GitInfo
from harness.results.recorder import RunRecorder, new_result
from harness.results.schema import DataInfo, ProtocolInfo, RunResult, RunSpec, TaskRecord, utc_now
from harness.types import Metric, Response, Sample, SampleScore, TaskResult

RESULTS_SUFFIX = "_results.json"
SAMPLES_MARK = "_samples_"
PROTOCOL = "lmms-eval"


@dataclass
class ImportedRun:
    """What one results file became."""

    source: Path
    run_dir: Path
    result: RunResult
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Finding the files


def find_results_files(path: Path) -> list[Path]:
    """Results files under a folder (recursively), or the one a results or samples file belongs to."""
    if not path.exists():
        raise UsageError(f"import lmms-eval: '{path}' does not exist")
    if path.is_dir():
        found = sorted(path.rglob(f"*{RESULTS_SUFFIX}"))
        if not found:
            raise DataError(f"{path}: no lmms-eval results file (*{RESULTS_SUFFIX}) in this folder")
        return found
    if path.name.endswith(RESULTS_SUFFIX):
        return [path]
    if SAMPLES_MARK in path.name and path.suffix == ".jsonl":
        results = path.with_name(path.name.split(SAMPLES_MARK, 1)[0] + RESULTS_SUFFIX)
        if not results.is_file():
            raise DataError(f"{path}: its results file {results.name} is not next to it")
        return [results]
    raise DataError(f"{path}: not an lmms-eval results (*{RESULTS_SUFFIX}) or samples (*{SAMPLES_MARK}TASK.jsonl) file")


def samples_files(results: Path) -> dict[str, Path]:
    """lmms-eval task name -> its samples file, written by the same run as ``results``."""
    prefix = results.name.removesuffix(RESULTS_SUFFIX) + SAMPLES_MARK
    return {p.name[len(prefix) : -len(".jsonl")]: p for p in sorted(results.parent.glob(f"{prefix}*.jsonl"))}


def read_results(path: Path) -> dict[str, Any]:
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        raise DataError(f"{path}: not an lmms-eval results file (no 'results' object)")
    return data


# ---------------------------------------------------------------------------------------------
# Metrics


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def convert_metrics(
    task: str, entry: dict[str, Any], n: int, higher_is_better: dict[str, bool]
) -> tuple[dict[str, Metric], list[str], list[str]]:
    """(metrics in our names and units, headline, notes) from one task's ``results`` entry."""
    mapping = metric_map(task)
    metrics: dict[str, Metric] = {}
    headline: list[str] = []
    kept: list[str] = []
    for key, raw in entry.items():
        metric, filter_name = split_key(key)
        value = _number(raw)
        if key == "alias" or "_stderr" in metric or value is None:
            continue
        stderr = _number(entry.get(f"{metric}_stderr,{filter_name}"))
        known: MetricMap | None = mapping.get(metric) if filter_name == "none" else None
        if known is None:
            name, scale = (metric if filter_name == "none" else key), 1.0
            kept.append(key)
        else:
            name, scale = known.ours, known.scale
            if known.headline and name not in headline:
                headline.append(name)
        metrics[name] = Metric(
            value=value * scale,
            stderr=None if stderr is None else stderr * scale,
            n=n,
            higher_is_better=higher_is_better.get(metric, True),
            description=f"lmms-eval {key}" + (f" x {scale:g}" if scale != 1 else ""),
        )
    notes = []
    if kept:
        notes.append(f"lmms-eval metric(s) kept under their own names and units: {', '.join(kept)}")
    if not headline and metrics:
        headline = [next(iter(metrics))]
    return metrics, headline, notes


def source_metric(task: str, headline: list[str], entry: dict[str, Any]) -> str | None:
    """The lmms-eval per-sample field behind our first headline metric."""
    for metric, known in metric_map(task).items():
        if headline and known.ours == headline[0]:
            return metric
    for key in entry:
        metric, _ = split_key(key)
        if headline and metric == headline[0]:
            return metric
    return None


# ---------------------------------------------------------------------------------------------
# Samples


def _text(value: Any) -> str:
    """A response as text: lmms-eval logs a string, or (older releases) nested lists of strings."""
    while isinstance(value, list) and value:
        value = value[0]
    return "" if value is None or value == [] else str(value)


def _sample_score(value: Any) -> float | None:
    """A per-sample metric as a number: the value itself, or the ``score`` of a dict (MME)."""
    if isinstance(value, dict):
        return _number(value.get("score"))
    return _number(value)


def _sample_id(record: dict[str, Any]) -> str:
    doc = record.get("doc")
    if isinstance(doc, dict):
        for key in ("question_id", "id", "index"):
            if key in doc:
                return str(doc[key])
    return str(record["doc_id"])


_LOG_FIELDS = {"doc_id", "doc", "doc_hash", "target", "resps", "filtered_resps", "input", "arguments"}


def convert_samples(
    path: Path, metric_names: set[str], score_field: str | None
) -> tuple[list[Sample], list[SampleScore], dict[str, Response]]:
    """Our samples, per-sample scores and responses from an lmms-eval samples file."""
    samples: list[Sample] = []
    scores: list[SampleScore] = []
    responses: dict[str, Response] = {}
    for lineno, record in iter_jsonl(path):
        if "doc_id" not in record:
            raise DataError(f"{path}:{lineno}: missing field 'doc_id' (not an lmms-eval samples line)")
        sid = _sample_id(record)
        per_sample = {k: v for k, v in record.items() if k in metric_names}
        score = _sample_score(per_sample.get(score_field)) if score_field else None
        samples.append(
            Sample(
                id=sid,
                question=_text(record.get("input", "")),
                target=record.get("target"),
                metadata={"doc_id": record["doc_id"], "doc_hash": record.get("doc_hash")},
            )
        )
        counts = record.get("token_counts")
        first = counts[0] if isinstance(counts, list) and counts else None
        output_tokens = first.get("output_tokens") if isinstance(first, dict) else None
        raw = record["resps"] if "resps" in record else record.get("filtered_resps")  # equal ones are logged once
        responses[sid] = Response(text=_text(raw), output_tokens=int(output_tokens or 0))
        extra = {k: v for k, v in record.items() if k not in _LOG_FIELDS and k not in per_sample}
        scores.append(
            SampleScore(
                sample_id=sid,
                parsed=_text(record.get("filtered_resps")),
                score=score,
                correct=None if score_field != "exact_match" or score is None else score == 1.0,
                detail={**per_sample, **extra},
            )
        )
    return samples, scores, responses


# ---------------------------------------------------------------------------------------------
# Runs


def _created(data: dict[str, Any]) -> str:
    """The run's date (lmms-eval's ``date``, local time of that machine), else now."""
    try:
        return datetime.strptime(str(data.get("date")), "%Y%m%d_%H%M%S").replace(tzinfo=UTC).isoformat()
    except ValueError:
        return utc_now()


def _model_args(text: Any) -> dict[str, str]:
    args: dict[str, str] = {}
    for part in str(text or "").split(","):
        key, sep, value = part.partition("=")
        if sep and key.strip():
            args[key.strip()] = value.strip()
    return args


def model_info(data: dict[str, Any], source: Path) -> ModelInfo:
    config = data.get("config") or {}
    args = _model_args(config.get("model_args"))
    model = str(config.get("model", "unknown"))
    target = args.get("pretrained") or args.get("model") or str(data.get("model_name") or "")
    name = Path(target.rstrip("/")).name if target else model
    return ModelInfo(
        spec=f"lmms-eval:{model}" + (f":{config.get('model_args')}" if config.get("model_args") else ""),
        name=name or model,
        path=target,
        dtype=args.get("dtype", ""),
        device=str(config.get("device") or ""),
        details={
            "imported_from": str(source),
            "lmms_eval_model": model,
            "lmms_eval_backend": config.get("model_backend"),
            "lmms_eval_version": data.get("lmms_eval_version"),
            "batch_size": config.get("batch_size"),
        },
    )


def run_id_for(source: Path, data: dict[str, Any], name: str) -> str:
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:10]
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in name)[:40].strip("-") or "model"
    return f"import-lmms-{data.get('date', 'undated')}-{safe}-{digest}"


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def build_run(
    source: Path, data: dict[str, Any], output_dir: Path, argv: list[str], store_url: str | None
) -> ImportedRun:
    """Write one results file (and its samples files) as a run directory; return it."""
    info = model_info(data, source)
    config = data.get("config") or {}
    run_id = run_id_for(source, data, info.name)
    created = _created(data)
    leaves = {t: r for t, r in data["results"].items() if not (data.get("group_subtasks") or {}).get(t)}
    our_names = {t: our_task(t)[0] for t in leaves}
    result = new_result(
        run_id=run_id,
        created=created,
        spec=RunSpec(
            command="import",
            tasks=list(our_names.values()),
            model=info.spec,
            model_args=_model_args(config.get("model_args")),
            batch_size=_int_or_none(config.get("batch_size")) or 1,
            limit=_int_or_none(config.get("limit")),
            output_dir=str(output_dir.resolve()),
            protocol=PROTOCOL,
            device=config.get("device"),
            seed=_int_or_none(config.get("random_seed")) or 0,
            answers=str(source.resolve()),
            argv=argv,
        ),
        protocol=ProtocolInfo(
            name=PROTOCOL,
            version=str(data.get("lmms_eval_version") or ""),
            description="imported from lmms-eval results: their prompts, generation settings and metrics",
        ),
        model=info,
        data=DataInfo(
            root="",
            fingerprints={our_names[t]: str(h) for t, h in (data.get("task_hashes") or {}).items() if t in our_names},
        ),
        git=GitInfo(commit=data.get("git_hash"), branch=data.get("git_branch")),
        env=Environment(
            python="", platform="", packages={"lmms-eval": str(data.get("lmms_eval_version") or "")}
        ),
    )
    result.status, result.finished = "complete", created
    samples_by_task = samples_files(source)
    notes: list[str] = []
    recorder = RunRecorder(output_dir, store_url, result)
    try:
        for lmms_task, entry in leaves.items():
            record = _add_task(lmms_task, entry, data, samples_by_task.get(lmms_task), recorder)
            notes.extend(f"{record.task}: {n}" for n in record.notes)
        recorder.save()
    finally:
        recorder.close()
    return ImportedRun(source, recorder.path, result, notes)


def _add_task(
    lmms_task: str, entry: dict[str, Any], data: dict[str, Any], samples_path: Path | None, recorder: RunRecorder
) -> TaskRecord:
    ours, known = our_task(lmms_task)
    counts = (data.get("n-samples") or {}).get(lmms_task) or {}
    n = _int_or_none(counts.get("effective")) or 0
    metrics, headline, notes = convert_metrics(
        lmms_task, entry, n, (data.get("higher_is_better") or {}).get(lmms_task, {})
    )
    notes.insert(
        0,
        f"imported from lmms-eval task '{lmms_task}'"
        + ("" if known else " (not one of our tasks; kept under its own name)"),
    )
    version = f"lmms-eval:{(data.get('versions') or {}).get(lmms_task, '')}"
    samples: list[Sample] = []
    scores: list[SampleScore] = []
    responses: dict[str, Response] = {}
    if samples_path is not None:
        names = {split_key(k)[0] for k in entry}
        samples, scores, responses = convert_samples(samples_path, names, source_metric(lmms_task, headline, entry))
        notes.append(f"samples from {samples_path.name}; sample ids are lmms-eval doc ids")
    else:
        notes.append("no samples file (lmms-eval ran without --log_samples)")
    task_result = TaskResult(
        task=ours,
        version=version,
        metrics=metrics,
        headline=headline,
        samples=scores,
        n_samples=n or len(samples),
        notes=notes,
    )
    config = (data.get("configs") or {}).get(lmms_task) or {}
    settings = {
        "lmms_eval_task": lmms_task,
        "generation_kwargs": config.get("generation_kwargs", {}),
        "n_shot": (data.get("n-shot") or {}).get(lmms_task),
    }
    return recorder.add_task(
        task_result,
        samples,
        responses,
        write_samples=samples_path is not None,
        protocol_settings=json.loads(json.dumps(settings, default=str)),
        data_fingerprint=str((data.get("task_hashes") or {}).get(lmms_task, "")),
    )


def import_lmms_eval(path: str, output_dir: str, store_url: str | None, argv: list[str]) -> list[ImportedRun]:
    """Import every lmms-eval results file at ``path`` into ``output_dir`` and the results store."""
    root = Path(output_dir)
    sources = find_results_files(Path(path).expanduser())
    loaded = [(source, read_results(source)) for source in sources]  # every file is checked before writing
    return [build_run(source, data, root, argv, store_url) for source, data in loaded]
