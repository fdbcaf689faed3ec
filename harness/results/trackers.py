"""``harness run --log-to mlflow[:URI] --log-to wandb[:PROJECT]``: a finished run in an experiment tracker.

Each tracker gets the run's spec (command, tasks, model, protocol, limit, seed... as parameters, plus the
model fingerprint, protocol version and hash, git commit), every task's metrics with their standard
errors and 95% intervals (``gqa/accuracy``, ``gqa/accuracy_stderr``, ``gqa/accuracy_ci_low``,
``gqa/accuracy_ci_high``) and the run's ``results.json`` as a file (an MLflow artifact, a W&B artifact of
type ``harness-results``). The libraries are optional (``pip install 'tinyllava-harness[trackers]'``);
``--log-to`` names a missing one before the run starts.

- ``mlflow``: the tracking URI after the colon (``file:/path/mlruns``, ``sqlite:///mlflow.db``,
  ``http://host:5000``...), else ``$MLFLOW_TRACKING_URI``, else MLflow's default; experiment
  ``$MLFLOW_EXPERIMENT_NAME``, else "harness". A ``file:`` URI sets ``MLFLOW_ALLOW_FILE_STORE=true`` (unless
  set), the switch MLflow 3 keeps its file store behind.
- ``wandb``: the project after the colon, else ``$WANDB_PROJECT``, else "harness"; ``WANDB_MODE=offline``
  writes the run under ``OUTPUT_DIR/wandb/`` for a later ``wandb sync``.
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.results.schema import RESULTS_FILE, RunResult

KINDS = {"mlflow": "mlflow", "wandb": "wandb"}  # tracker -> the module it needs
INSTALL = "pip install 'tinyllava-harness[trackers]'"


@dataclass(frozen=True)
class Tracker:
    kind: str  # "mlflow" or "wandb"
    target: str | None = None  # the MLflow tracking URI or the W&B project

    def describe(self) -> str:
        return self.kind + (f":{self.target}" if self.target else "")


def parse_log_to(values: str | Sequence[str] | None) -> list[Tracker]:
    """The ``--log-to`` values as trackers; an unknown tracker or a missing library is a UsageError."""
    if not values:
        return []
    trackers = []
    for value in [values] if isinstance(values, str) else list(values):
        kind, sep, target = value.partition(":")
        kind = kind.strip().lower()
        if kind not in KINDS:
            raise UsageError(f"--log-to {value}: unknown tracker '{kind}' (mlflow[:URI] or wandb[:PROJECT])")
        if sep and not target.strip():
            raise UsageError(f"--log-to {value}: nothing after ':' (mlflow[:URI] or wandb[:PROJECT])")
        if importlib.util.find_spec(KINDS[kind]) is None:
            raise UsageError(f"--log-to {kind} needs the {KINDS[kind]} package: {INSTALL}")
        trackers.append(Tracker(kind, target.strip() or None))
    return trackers


# ---------------------------------------------------------------------------------------------
# What is logged


def run_params(result: RunResult) -> dict[str, str]:
    """The run's spec and identity as flat string parameters."""
    spec = result.spec
    params: dict[str, Any] = {
        "run_id": result.run_id,
        "command": spec.command,
        "tasks": ",".join(spec.tasks),
        "model": spec.model,
        "batch_size": spec.batch_size,
        "limit": spec.limit,
        "protocol": spec.protocol,
        "device": spec.device,
        "seed": spec.seed,
        "data_root": spec.data_root,
        "world_size": spec.world_size,
        "shard": spec.shard,
        "no_judge": spec.no_judge,
    }
    params.update({f"model_args.{k}": v for k, v in spec.model_args.items()})
    if result.model is not None:
        params.update({"model_name": result.model.name, "model_fingerprint": result.model.fingerprint,
                       "model_is_demo": result.model.is_demo})  # fmt: skip
    if result.protocol is not None:
        params.update({"protocol_version": result.protocol.version, "protocol_hash": result.protocol.content_hash})
    if result.judge is not None:
        params["judge"] = result.judge.spec
    params.update({"git_commit": result.git.commit, "git_dirty": getattr(result.git, "dirty", None),
                   "data_is_demo": result.data.is_demo})  # fmt: skip
    return {_key(k): str(v) for k, v in params.items() if v is not None and v != ""}


def run_metrics(result: RunResult) -> dict[str, float]:
    """``task/metric`` values with ``_stderr``, ``_ci_low`` and ``_ci_high`` where the run has them."""
    out: dict[str, float] = {}
    for task, record in result.tasks.items():
        for name, metric in record.metrics.items():
            base = _key(f"{task}/{name}")
            for suffix, value in (("", metric.value), ("_stderr", metric.stderr), ("_ci_low", metric.ci_low),
                                  ("_ci_high", metric.ci_high)):  # fmt: skip
                if value is not None and math.isfinite(value):
                    out[base + suffix] = float(value)
        out[_key(f"{task}/n_samples")] = float(record.n_samples)
    return out


def _key(text: str) -> str:
    """A name both trackers accept (letters, digits, ``_ - . /`` and spaces)."""
    return re.sub(r"[^A-Za-z0-9_\-./ ]", "_", text)[:250]


# ---------------------------------------------------------------------------------------------
# The trackers


def log_run(trackers: Sequence[Tracker], result: RunResult, run_dir: Path) -> list[str]:
    """Log the finished run to every tracker; one line per tracker saying where it went."""
    said = []
    for tracker in trackers:
        if tracker.kind == "mlflow":
            said.append(log_mlflow(result, run_dir, tracker.target))
        else:
            said.append(log_wandb(result, run_dir, tracker.target).where)
    return said


def log_mlflow(result: RunResult, run_dir: Path, uri: str | None = None) -> str:
    """One MLflow run (named after our run id) with params, metrics, tags and results.json; its id."""
    import time

    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or None
    if uri and (uri.startswith("file:") or "://" not in uri):  # a file store was asked for by name: allow it
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # (MLflow 3 keeps it behind this switch)
    client = MlflowClient(tracking_uri=uri)
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or "harness"
    experiment = client.get_experiment_by_name(name)
    experiment_id = experiment.experiment_id if experiment is not None else client.create_experiment(name)
    tags = {"harness.run_id": result.run_id, "harness.status": result.status, "harness.run_dir": str(run_dir)}
    run = client.create_run(experiment_id, run_name=result.run_id, tags=tags)
    run_id = run.info.run_id
    now = int(time.time() * 1000)
    params = [Param(k, v[:6000]) for k, v in run_params(result).items()]
    metrics = [Metric(k, v, now, 0) for k, v in run_metrics(result).items()]
    for start in range(0, max(len(params), len(metrics)), 100):  # MLflow's batch limits
        client.log_batch(run_id, metrics=metrics[start : start + 100], params=params[start : start + 100],
                         tags=[RunTag("harness.protocol", result.spec.protocol)] if start == 0 else [])  # fmt: skip
    client.log_artifact(run_id, str(run_dir / RESULTS_FILE))
    client.set_terminated(run_id, status="FINISHED" if result.status in ("complete", "partial") else "FAILED")
    return f"mlflow: run {run_id} in experiment '{name}' at {client.tracking_uri}"


@dataclass
class WandbLogged:
    where: str
    run: Any  # the finished wandb Run (its config and summary)


def log_wandb(result: RunResult, run_dir: Path, project: str | None = None) -> WandbLogged:
    """One W&B run (named after our run id) with config, summary metrics and results.json as an artifact."""
    import wandb

    project = project or os.environ.get("WANDB_PROJECT") or "harness"
    run = wandb.init(
        project=project,
        name=result.run_id,
        config=run_params(result),
        tags=[result.spec.command, result.spec.protocol or "protocol?", result.status],
        job_type="eval",
        dir=str(run_dir.parent),
        reinit="create_new",
    )
    try:
        metrics = run_metrics(result)
        run.log(metrics)
        run.summary.update(metrics)
        artifact = wandb.Artifact(_key(f"results-{result.run_id}").replace("/", "-"), type="harness-results")
        artifact.add_file(str(run_dir / RESULTS_FILE))
        run.log_artifact(artifact)
        where = f"wandb: run {run.id} in project '{project}'" + (" (offline)" if run.settings.mode == "offline" else "")
    finally:
        run.finish(exit_code=0 if result.status in ("complete", "partial") else 1)
    return WandbLogged(where, run)


def log_finished(trackers: Sequence[Tracker], result: RunResult | None) -> None:
    """``harness run``: log the run its process recorded (rank 0; nothing without ``--log-to``)."""
    if not trackers or result is None:
        return
    run_dir = Path(result.spec.output_dir) / result.run_id
    if not (run_dir / RESULTS_FILE).is_file():  # another rank recorded it
        return
    for line in log_run(trackers, result, run_dir):
        print(f"logged to {line}", file=sys.stderr)
