"""Reference scores from lmms-eval's own task code, for conformance tests.

Two halves in one file:

- run as a script with the lmms-eval venv's python,
  ``<venv>/bin/python tests/helpers/lmms_reference.py SPEC.json``, it scores given answers with an
  lmms-eval task (its YAML loader, its ``ConfigurableTask``, filters, ``process_results`` and the
  aggregations of ``metric_list``) and prints one JSON object on stdout (all log output goes to
  stderr). This half imports nothing of our project.
- :func:`lmms_reference` / :func:`lmms_references` (pytest side) write a spec, run that script and return
  the parsed JSON.

SPEC (a JSON object; a JSON list of them is scored in one process and answered with a list, where a
spec that fails answers ``{"error": traceback}``):

- ``task_yaml``: the task's YAML, relative to ``lmms_eval/tasks`` (``"mme/mme.yaml"``);
- ``docs``: the documents, dicts in the schema of the task's Hugging Face dataset (image fields may be
  left out or null: nothing here renders a prompt image);
- ``responses``: one model answer per document;
- ``reasoning_tags``: ``"default"`` (lmms-eval's command-line default, ``[["<think>", "</think>"],
  ["<analysis>", "</analysis>"]]``), null (``--reasoning_tags none``) or an explicit list of pairs;
  resolved against the task's own ``reasoning_tags`` as ``evaluator.py`` does;
- ``env`` (optional): environment variables set before lmms_eval is imported (a judge endpoint...);
- ``no_retry_waits`` (optional, false): make ``time.sleep`` a no-op, so a judge call that fails (an
  unreachable endpoint, i.e. "no judge") runs through lmms-eval's retry loops at once.

Output: ``{"task", "responses" (what process_results received, after the filter and tag stripping),
"per_doc" (process_results' dicts), "metrics" ({metric: aggregated value}), "files" ({path: parsed
JSON or null} of what the aggregations wrote under their output path), "skipped_process_docs"}``.

How a document is scored (``evaluator.py``'s ``_process_document_results``): the task's filter
ensembles run on ``[[answer]]`` (default: take_first; the first ensemble's output is scored), the
reasoning tags are cut with ``strip_reasoning_tags``, and ``ConfigurableTask.process_results(doc,
[answer])`` is called (it
strips the answer before the YAML's ``process_results``, or applies the named metric when there is
none). Each aggregation gets the per-document values of its metric (documents that did not report it
are left out, as ``TaskOutput`` does), plus ``args`` (the command line's defaults with
``output_path`` set to a temporary folder) when it takes them. A task's ``process_docs`` is not run:
the documents are taken as already processed (GQA's only joins images from the Hub).
Not emulated: ``auto_strip_thinking`` and multi-request (``repeats``) tasks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve()
TIMEOUT = 600.0


# ---------------------------------------------------------------------------------------------
# pytest side


def _python(venv: Path) -> Path:
    """The interpreter of ``venv``: a venv folder or its python itself (what ``ensure_venv`` returns)."""
    venv = Path(venv)
    return venv / "bin" / "python" if venv.is_dir() else venv


def _run(specs: dict[str, Any] | list[dict[str, Any]], venv: Path, timeout: float) -> Any:
    with tempfile.TemporaryDirectory(prefix="lmms-ref-") as tmp:
        spec_path = Path(tmp) / "spec.json"
        spec_path.write_text(json.dumps(specs, ensure_ascii=False), encoding="utf-8")
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "WANDB_MODE": "disabled",
            "TOKENIZERS_PARALLELISM": "false",
            "HF_DATASETS_CACHE": str(Path(tmp) / "hf-datasets"),
        }
        proc = subprocess.run(
            [str(_python(venv)), str(SCRIPT), str(spec_path)],
            capture_output=True, text=True, timeout=timeout, cwd=tmp, env=env,
        )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"lmms-eval reference failed (exit {proc.returncode}):\n{proc.stderr[-6000:]}")
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise RuntimeError(f"lmms-eval reference printed no JSON: {exc}\nstdout: {proc.stdout[-2000:]}\n"
                           f"stderr: {proc.stderr[-4000:]}") from exc


def lmms_reference(spec: dict[str, Any], venv: Path, timeout: float = TIMEOUT) -> dict[str, Any]:
    """lmms-eval's scores for one SPEC (see the module docstring); ``venv`` is the lmms-eval venv (or its
    python). Raises RuntimeError with the script's stderr when it fails."""
    result = _run(spec, venv, timeout)
    assert isinstance(result, dict)
    return result


def lmms_references(specs: list[dict[str, Any]], venv: Path, timeout: float = TIMEOUT) -> list[dict[str, Any]]:
    """Several SPECs scored in one process (lmms-eval is imported once; their ``env`` must agree). A spec
    that fails answers ``{"error": traceback}`` in its place."""
    result = _run(specs, venv, timeout)
    assert isinstance(result, list) and len(result) == len(specs)
    return result


# ---------------------------------------------------------------------------------------------
# script side (runs in the lmms-eval venv)


def json_safe(value: Any) -> Any:
    """Plain JSON data: numpy scalars and arrays as Python values, tuples as lists, keys as text,
    anything else unknown as its repr."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [json_safe(v) for v in value]
    item = getattr(value, "item", None)  # numpy scalar
    if callable(item) and getattr(value, "shape", None) == ():
        return json_safe(item())
    tolist = getattr(value, "tolist", None)  # numpy array
    if callable(tolist):
        return json_safe(tolist())
    return repr(value)


class _Instance:
    """The two attributes of an lmms-eval ``Instance`` that filter ensembles read and write."""

    def __init__(self, response: str) -> None:
        self.resps = [response]
        self.filtered_resps: dict[str, Any] = {}


def _cli_args(output_path: str) -> Any:
    """lmms-eval's command-line defaults (what ``task.args`` holds in a run), with ``output_path`` set."""
    from lmms_eval.__main__ import parse_eval_args

    argv = sys.argv
    sys.argv = ["lmms_eval"]
    try:
        _, args = parse_eval_args()
    finally:
        sys.argv = argv
    args.output_path = output_path
    return args


def _load_task(task_yaml: str, docs: list[dict[str, Any]]) -> Any:
    """The task's ``ConfigurableTask``, built from its YAML as TaskManager does, over ``docs``."""
    import datasets
    import lmms_eval
    from lmms_eval.api.task import ConfigurableTask
    from lmms_eval.utils import load_yaml_config

    path = Path(lmms_eval.__file__).parent / "tasks" / task_yaml
    config = load_yaml_config(str(path), mode="full")
    config.pop("process_docs", None)

    class LocalTask(ConfigurableTask):
        def download(self, dataset_kwargs: Any = None) -> None:
            split = self.config.test_split or self.config.validation_split
            self.dataset = datasets.DatasetDict({split: datasets.Dataset.from_list(docs)})
            self.dataset_no_image = self.dataset

    return LocalTask(config=config)


def score_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """Score one SPEC with lmms-eval's task code (see the module docstring)."""
    import inspect
    import time

    started = time.perf_counter()

    import lmms_eval.evaluator  # noqa: F401  (what a run has loaded: the metric and aggregation registries)
    from lmms_eval.api.reasoning import parse_reasoning_tags_config, strip_reasoning_tags

    docs, responses = list(spec["docs"]), [str(r) for r in spec["responses"]]
    if len(docs) != len(responses):
        raise ValueError(f"{len(docs)} docs but {len(responses)} responses")
    task = _load_task(spec["task_yaml"], docs)
    with tempfile.TemporaryDirectory(prefix="lmms-ref-out-") as out:
        args = _cli_args(out)
        tags = spec.get("reasoning_tags")
        cli_tags = args.reasoning_tags if tags == "default" else tags
        tags = parse_reasoning_tags_config(cli_value=cli_tags, task_value=getattr(task.config, "reasoning_tags", None))

        instances = [_Instance(r) for r in responses]
        filter_name = task._filters[0].name
        for ensemble in task._filters:
            ensemble.apply(instances, None)
        seen: list[str] = []
        per_doc: list[dict[str, Any]] = []
        for doc, instance in zip(task.eval_docs_no_media, instances):
            response = instance.filtered_resps[filter_name]
            if tags is not None and isinstance(response, str):
                response = strip_reasoning_tags(response, tags)
            seen.append(response)
            per_doc.append(task.process_results(doc, [response]))

        metrics: dict[str, Any] = {}
        for metric, aggregate in task.aggregation().items():
            items = [values[metric] for values in per_doc if metric in values]
            if not items:
                continue
            if "args" in inspect.signature(aggregate).parameters:
                metrics[metric] = aggregate(items, args=args)
            else:
                metrics[metric] = aggregate(items)
        files: dict[str, Any] = {}
        for path in sorted(Path(out).rglob("*")):
            if path.is_file():
                text = path.read_text(encoding="utf-8", errors="replace") if path.suffix == ".json" else None
                files[path.relative_to(out).as_posix()] = json.loads(text) if text is not None else None
    seconds = time.perf_counter() - started
    print(f"lmms_reference: {task.config.task}: {len(docs)} docs in {seconds:.1f}s", file=sys.stderr)
    return json_safe({
        "task": task.config.task,
        "filter": filter_name,
        "reasoning_tags": tags,
        "responses": seen,
        "per_doc": per_doc,
        "metrics": metrics,
        "files": files,
        "skipped_process_docs": True,
    })  # fmt: skip


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: lmms_reference.py SPEC.json", file=sys.stderr)
        return 2
    import contextlib

    # this file's folder holds test helpers whose names must not shadow modules lmms-eval imports
    here = str(SCRIPT.parent)
    sys.path[:] = [p for p in sys.path if p and Path(p).resolve() != Path(here)]
    loaded = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    specs = loaded if isinstance(loaded, list) else [loaded]
    env: dict[str, str] = {}
    for spec in specs:
        for key, value in (spec.get("env") or {}).items():
            if env.get(key, value) != value:
                raise ValueError(f"specs disagree on environment variable {key}")
            env[key] = str(value)
    os.environ.update(env)
    if any(spec.get("no_retry_waits") for spec in specs):
        import time

        time.sleep = lambda _seconds: None
    with contextlib.redirect_stdout(sys.stderr):  # lmms-eval prints reports; stdout carries only the JSON
        if not isinstance(loaded, list):
            result: Any = score_spec(loaded)
        else:  # a failing spec answers {"error": traceback}; the others are still scored
            import traceback

            result = []
            for spec in specs:
                try:
                    result.append(score_spec(spec))
                except Exception:
                    traceback.print_exc()
                    result.append({"error": traceback.format_exc()})
    sys.stdout.write(json.dumps(result, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
