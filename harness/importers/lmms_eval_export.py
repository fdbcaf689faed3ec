"""``harness export lmms-eval RUN --output DIR``: one of our runs in lmms-eval's results layout.

The inverse of ``harness import lmms-eval`` (``lmms_eval.py``): writes
``DIR/{model_name_sanitized}/{date}_results.json`` (``results``, ``group_subtasks``, ``configs``,
``versions``, ``n-shot``, ``higher_is_better``, ``n-samples``, ``config``, ``git_hash``, ``date``,
``task_hashes``, ``model_name``...) and, for every task with a samples log,
``{date}_samples_{task}.jsonl`` with lmms-eval's sample lines (``doc_id``, ``doc``, ``target``,
``arguments``, ``resps``, ``filtered_resps``, the hashes, ``input``, ``token_counts`` and the per-sample
metric field). Task and metric names and units go back through ``lmms_eval_names.TASKS`` (our
``accuracy`` x 1/100 -> ``exact_match``); metrics without a counterpart keep our names and values.
The doc of a sample line carries our sample's metadata with ``question_id`` set to our sample id, so
importing the export gives back the same ids, answers, per-sample scores and metrics.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.importers.lmms_eval_names import TASKS
from harness.results.loading import load_run
from harness.results.schema import RunResult, TaskRecord, load_results

_RESERVED = {"doc_id", "doc", "doc_hash", "prompt_hash", "target_hash", "target", "resps", "filtered_resps",
             "input", "arguments", "token_counts"}  # fmt: skip


def hash_string(text: str) -> str:
    """lmms-eval's ``hash_string``: sha256 hex of the UTF-8 text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sanitize_model_name(name: str) -> str:
    """lmms-eval's folder name for a model (``/`` and other path characters -> ``__``)."""
    return re.sub(r"[\"<>:/\|\\?\*\[\]]+", "__", name)


def lmms_task_name(ours: str, record: TaskRecord) -> str:
    """The lmms-eval task an our task corresponds to (an imported run keeps the name it came with)."""
    recorded = record.protocol_settings.get("lmms_eval_task")
    if isinstance(recorded, str) and recorded:
        return recorded
    if ours in TASKS and TASKS[ours][0] == ours:
        return ours
    for lmms, (name, _) in TASKS.items():
        if name == ours:
            return lmms
    return ours


def metric_names(lmms_task: str) -> dict[str, tuple[str, float]]:
    """Our metric -> (lmms-eval metric, factor from lmms-eval units to ours); the first spelling wins."""
    out: dict[str, tuple[str, float]] = {}
    for lmms_metric, known in TASKS.get(lmms_task, ("", {}))[1].items():
        out.setdefault(known.ours, (lmms_metric, known.scale))
    return out


def _date(created: str) -> str:
    try:
        return datetime.fromisoformat(created).strftime("%Y%m%d_%H%M%S")
    except ValueError:
        return "undated"


def _model_config(result: RunResult) -> tuple[dict[str, Any], str]:
    """lmms-eval's ``config`` block and the model name: our model through the ``tinyllava_harness`` plugin."""
    spec = result.spec.model or (result.model.spec if result.model else "")
    if result.spec.command == "import" and result.model is not None:  # back to what lmms-eval ran
        details = result.model.details
        model = str(details.get("lmms_eval_model") or "unknown")
        model_args = ",".join(f"{k}={v}" for k, v in result.spec.model_args.items())
        name = result.model.path or result.model.name
    else:
        model = "tinyllava_harness"
        model_args = ",".join([f"model={spec}", *(f"{k}={v}" for k, v in result.spec.model_args.items())])
        name = spec or "model"  # lmms-eval names a run after its model_args model=
    config = {
        "model": model,
        "model_args": model_args,
        "batch_size": str(result.spec.batch_size),
        "batch_sizes": [],
        "device": result.spec.device or (result.model.device if result.model else None),
        "use_cache": None,
        "limit": result.spec.limit,
        "bootstrap_iters": 0,
        "gen_kwargs": "",
        "random_seed": result.spec.seed,
        "numpy_seed": result.spec.seed,
        "torch_seed": result.spec.seed,
        "fewshot_seed": result.spec.seed,
    }
    return config, name


def _results_entry(lmms_task: str, record: TaskRecord) -> tuple[dict[str, Any], dict[str, bool], str | None]:
    """(the task's ``results`` entry, its ``higher_is_better``, the lmms-eval metric of our first headline)."""
    names = metric_names(lmms_task)
    entry: dict[str, Any] = {"alias": lmms_task}
    better: dict[str, bool] = {}
    headline = [m for m in record.headline if m in record.metrics]
    order = headline + [m for m in record.metrics if m not in headline]
    first: str | None = None
    for ours in order:
        metric = record.metrics[ours]
        lmms_metric, scale = names.get(ours, (ours, 1.0))
        if first is None and ours in record.headline:
            first = lmms_metric
        entry[f"{lmms_metric},none"] = metric.value / scale
        entry[f"{lmms_metric}_stderr,none"] = "N/A" if metric.stderr is None else metric.stderr / scale
        better[lmms_metric] = metric.higher_is_better
    return entry, better, first


def _doc(record: dict[str, Any]) -> dict[str, Any]:
    doc = {k: v for k, v in (record.get("metadata") or {}).items() if k not in ("question_id", "id", "index")}
    doc["question_id"] = str(record["id"])  # what the importer reads back as the sample id
    return doc


def sample_line(doc_id: int, record: dict[str, Any], score_field: str | None) -> dict[str, Any]:
    """One lmms-eval samples line from one of our samples-log records."""
    response = record.get("response") or {}
    text = str(response.get("text") or "")
    parsed = record.get("parsed")
    filtered = text if parsed is None else str(parsed)
    request = record.get("request") or {}
    prompt = str(request.get("prompt") or record.get("question") or "")
    doc = _doc(record)
    target = record.get("target")
    line: dict[str, Any] = {
        "doc_id": doc_id,
        "doc": doc,
        "target": target,
        "arguments": [[prompt, request.get("generation") or {}]],
        "resps": [[text]],
        "filtered_resps": [filtered],
        "doc_hash": hash_string(json.dumps(doc, indent=2, default=str, ensure_ascii=False)),
        "prompt_hash": hash_string(prompt),
        "target_hash": hash_string(str(target)),
        "input": str(record.get("question") or prompt),
        "token_counts": [{"output_tokens": int(response.get("output_tokens") or 0)}],
    }
    for key, value in (record.get("detail") or {}).items():
        if key not in _RESERVED and key != score_field:
            line[key] = value
    if score_field is not None:
        line[score_field] = record.get("score")
    return line


def export_lmms_eval(run: str, output: str, store_url: str | None = None) -> Path:
    """Write the run (a run directory, its results.json, or a store id) in lmms-eval's layout; return the
    results file written."""
    data = load_run(run, "export lmms-eval", store_url)
    if data.kind != "run":
        raise UsageError(f"export lmms-eval: '{run}' is a baseline file, not a run")
    path = Path(run).expanduser()
    result = load_results(path if path.is_dir() else path.parent) if path.exists() else _stored(run, store_url)
    config, model_name = _model_config(result)
    date = _date(result.created)
    folder = Path(output).expanduser() / sanitize_model_name(model_name)
    folder.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {key: {} for key in
                           ("results", "group_subtasks", "configs", "versions", "n-shot", "higher_is_better",
                            "n-samples", "task_hashes")}  # fmt: skip
    for ours, task in data.tasks.items():
        record = task.record
        lmms_task = lmms_task_name(ours, record)
        entry, better, score_field = _results_entry(lmms_task, record)
        doc["results"][lmms_task] = entry
        doc["group_subtasks"][lmms_task] = []
        settings = record.protocol_settings
        generation = settings.get("generation_kwargs")
        if not isinstance(generation, dict):
            generation = {k: v for k, v in settings.items() if k in ("max_new_tokens", "temperature", "until")}
        doc["configs"][lmms_task] = {
            "task": lmms_task,
            "output_type": "generate_until",
            "generation_kwargs": generation,
            "metric_list": [{"metric": m, "higher_is_better": b} for m, b in better.items()],
            "metadata": {"harness_task": ours, "harness_version": record.version, "protocol_settings": settings},
        }
        version = record.version.removeprefix("lmms-eval:")
        doc["versions"][lmms_task] = version
        doc["n-shot"][lmms_task] = settings.get("n_shot") or 0
        doc["higher_is_better"][lmms_task] = better
        doc["n-samples"][lmms_task] = {"original": record.n_samples, "effective": record.n_samples}
        doc["task_hashes"][lmms_task] = record.data_fingerprint
        records = task.records if task.samples_path is not None and task.samples_path.is_file() else None
        if records is not None:
            lines = [sample_line(i, rec, score_field) for i, rec in enumerate(records)]
            text = "".join(json.dumps(line, ensure_ascii=False, default=str) + "\n" for line in lines)
            (folder / f"{date}_samples_{lmms_task}.jsonl").write_text(text, encoding="utf-8")
    doc["config"] = config
    doc["git_hash"] = result.git.commit
    doc["git_branch"] = result.git.branch
    doc["date"] = date
    if result.spec.command == "import" and result.model is not None:
        doc["lmms_eval_version"] = result.model.details.get("lmms_eval_version")
    doc["model_name"] = model_name
    doc["model_name_sanitized"] = sanitize_model_name(model_name)
    doc["harness_export"] = {"run_id": result.run_id, "status": result.status, "protocol":
                             result.protocol.name if result.protocol else result.spec.protocol}  # fmt: skip
    target = folder / f"{date}_results.json"
    target.write_text(json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    return target


def _stored(run_id: str, store_url: str | None) -> RunResult:
    from harness.results.store import ResultsStore, default_store_url

    store = ResultsStore(store_url or default_store_url(Path("results")))
    try:
        result = store.get_run(run_id)
    finally:
        store.close()
    assert result is not None  # load_run found it
    return result
