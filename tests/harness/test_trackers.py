"""``harness run --log-to``: a run's spec, metrics with intervals and results.json in MLflow and W&B.

The MLflow and W&B tests use the real libraries (extra ``trackers``) offline: a local MLflow file store
(``file:`` URI) and W&B's offline mode, read back from what they wrote. They skip when the library is absent.
"""

from __future__ import annotations

import struct
import time
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from harness.errors import UsageError
from harness.results import trackers
from harness.results.provenance import Environment, GitInfo
from harness.results.schema import RESULTS_FILE, DataInfo, ProtocolInfo, RunDirectory, RunResult, RunSpec, TaskRecord
from harness.types import Metric


def a_run(tmp_path: Path) -> tuple[RunResult, Path]:
    accuracy = Metric(value=62.5, stderr=12.5, ci_low=37.5, ci_high=87.5, n=8)
    result = RunResult(
        run_id="20261203-120000-demo-abc123",
        status="complete",
        created="2026-12-03T12:00:00+00:00",
        spec=RunSpec(command="run", tasks=["gqa", "mme"], model="tinyllava:demo", model_args={"conv": "phi"},
                     batch_size=4, limit=8, protocol="llava15", seed=3, output_dir=str(tmp_path)),
        protocol=ProtocolInfo(name="llava15", version="1", content_hash="feed"),
        data=DataInfo(root="/data"),
        git=GitInfo(commit="abc", branch="main", dirty=False),
        environment=Environment(python="3.11", platform="linux", packages={}),
        tasks={
            "gqa": TaskRecord(task="gqa", version="1", n_samples=8, headline=["accuracy"],
                              metrics={"accuracy": accuracy}),
            "mme": TaskRecord(task="mme", version="1", n_samples=4, headline=["perception"],
                              metrics={"perception": Metric(value=1200.0), "odd": Metric(value=float("nan"))}),
        },
    )
    directory = RunDirectory(tmp_path, result.run_id)
    directory.write_results(result)
    return result, directory.path


def test_log_to_values_are_checked_before_the_run(monkeypatch) -> None:
    assert trackers.parse_log_to(None) == []
    with pytest.raises(UsageError, match="unknown tracker 'neptune'"):
        trackers.parse_log_to(["neptune"])
    with pytest.raises(UsageError, match="nothing after ':'"):
        trackers.parse_log_to("wandb:")
    monkeypatch.setattr(trackers.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UsageError, match=r"needs the mlflow package: pip install 'tinyllava-harness\[trackers\]'"):
        trackers.parse_log_to(["mlflow:file:/tmp/x"])


def test_run_refuses_an_unknown_tracker_with_exit_2(tmp_path: Path, capsys) -> None:
    code = main(["run", "--tasks", "gqa", "--limit", "2", "--output-dir", str(tmp_path), "--log-to", "comet"])
    assert code == 2 and "unknown tracker 'comet'" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing ran


def test_parsed_trackers_keep_uri_and_project(monkeypatch) -> None:
    monkeypatch.setattr(trackers.importlib.util, "find_spec", lambda name: object())
    parsed = trackers.parse_log_to(["mlflow:file:/tmp/mlruns", "wandb:my-proj", "MLflow"])
    assert parsed == [trackers.Tracker("mlflow", "file:/tmp/mlruns"), trackers.Tracker("wandb", "my-proj"),
                      trackers.Tracker("mlflow")]  # fmt: skip


def test_params_and_metrics_with_intervals(tmp_path: Path) -> None:
    result, _ = a_run(tmp_path)
    params = trackers.run_params(result)
    assert params["tasks"] == "gqa,mme" and params["model"] == "tinyllava:demo" and params["limit"] == "8"
    assert params["model_args.conv"] == "phi" and params["protocol_hash"] == "feed" and params["seed"] == "3"
    metrics = trackers.run_metrics(result)
    assert metrics["gqa/accuracy"] == 62.5 and metrics["gqa/accuracy_stderr"] == 12.5
    assert metrics["gqa/accuracy_ci_low"] == 37.5 and metrics["gqa/accuracy_ci_high"] == 87.5
    assert metrics["mme/perception"] == 1200.0 and "mme/perception_stderr" not in metrics
    assert "mme/odd" not in metrics and metrics["gqa/n_samples"] == 8


def test_mlflow_file_store(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    result, run_dir = a_run(tmp_path / "runs")
    uri = (tmp_path / "mlruns").as_uri()
    said = trackers.log_run(trackers.parse_log_to([f"mlflow:{uri}"]), result, run_dir)
    assert said[0].startswith("mlflow: run ")
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("harness")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == result.run_id and run.info.status == "FINISHED"
    assert run.data.params["tasks"] == "gqa,mme" and run.data.params["model"] == "tinyllava:demo"
    assert run.data.metrics["gqa/accuracy"] == 62.5 and run.data.metrics["gqa/accuracy_ci_high"] == 87.5
    assert run.data.tags["harness.run_id"] == result.run_id
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == [RESULTS_FILE]
    local = Path(client.download_artifacts(run.info.run_id, RESULTS_FILE, str(tmp_path / "dl")))
    assert local.read_text() == (run_dir / RESULTS_FILE).read_text()


def _wandb_records(path: Path) -> list[Any]:
    """The protobuf records of an offline ``.wandb`` file (a LevelDB-style log of 32 KiB blocks)."""
    from wandb.proto import wandb_internal_pb2

    data, pos, block, records, buf = path.read_bytes(), 7, 32768, [], b""
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        if block - pos % block < 7:
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind in (1, 4):  # full, last
            record = wandb_internal_pb2.Record()
            record.ParseFromString(buf + chunk)
            records.append(record)
            buf = b""
        elif kind in (2, 3):  # first, middle
            buf += chunk
    return records


def test_wandb_offline(tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    result, run_dir = a_run(tmp_path / "runs")
    logged = trackers.log_wandb(result, run_dir, "harness-tests")
    assert "(offline)" in logged.where
    (file,) = (tmp_path / "runs" / "wandb").glob("offline-run-*/run-*.wandb")
    deadline = time.monotonic() + 30
    while True:  # W&B's core process may still be writing the file when finish() returns
        records = _wandb_records(file)
        summary = {item.key or "/".join(item.nested_key): item.value_json for r in records
                   if r.WhichOneof("record_type") == "summary" for item in r.summary.update}  # fmt: skip
        if "gqa/accuracy_ci_low" in summary or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert float(summary["gqa/accuracy"]) == 62.5 and float(summary["gqa/accuracy_ci_low"]) == 37.5
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert run.project == "harness-tests" and run.display_name == result.run_id
    config = {item.key: item.value_json for item in run.config.update}
    assert config["tasks"] == '"gqa,mme"' and config["model"] == '"tinyllava:demo"'
    (artifact,) = [r.artifact for r in records if r.WhichOneof("record_type") == "artifact"]
    assert artifact.type == "harness-results" and [m.path for m in artifact.manifest.contents] == [RESULTS_FILE]
