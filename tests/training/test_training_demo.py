"""The demo model's training path: ``python -m training demo`` on a few scenes, briefly, into a temporary folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("yaml")


def test_demo_retrains_briefly_and_its_loss_falls(tmp_path: Path) -> None:
    from training.demo import run_demo

    out = tmp_path / "demo-model"
    outcome = run_demo(
        {"output_dir": str(out), "max_steps": 40, "per_device_batch_size": 8, "global_batch_size": 8,
         "logging_steps": 5, "learning_rate": 3e-3},
        work=tmp_path / "work",
        n_scenes=80,
    )  # fmt: skip
    losses = [loss for _, loss in outcome.losses]
    assert outcome.global_step == 40 and len(losses) >= 6
    first, last = sum(losses[:2]) / 2, sum(losses[-2:]) / 2
    assert last < 0.6 * first, losses
    log = json.loads((out / "training_log.json").read_text())
    assert log["steps"] == 40 and log["rebuild"] == "python -m training demo"
    assert (out / "model.safetensors").is_file() and not list(out.glob("checkpoint-*"))
    config = json.loads((out / "config.json").read_text())
    assert str(tmp_path) not in json.dumps(config)  # no trace of the temporary build folders
