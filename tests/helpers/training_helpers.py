"""Inputs for training tests: a small synthetic data set and a very small LLaMA + SigLIP (configs only)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from training import demo_data
from training.demo import write_tiny_llm, write_tiny_tower


def tiny_inputs(folder: Path, n_scenes: int = 24) -> dict[str, Any]:
    """Recipe fields for a CPU run of a few steps: data, a 32-wide 1-layer LLM and tower, fp32, no DeepSpeed."""
    data_path, images = demo_data.write_dataset(folder / "data", 0, n_scenes)
    records = json.loads(data_path.read_text())
    llm = write_tiny_llm(folder / "llm", demo_data.corpus(records), hidden=32, layers=1, vocab_size=400)
    tower = write_tiny_tower(folder / "vision", image_size=32, hidden=32, layers=2)
    return {
        "data_path": str(data_path),
        "image_folder": str(images),
        "llm": str(llm),
        "vision_tower": str(tower),
        "output_dir": str(folder / "out"),
        "template": "v1",
        "deepspeed": None,
        "precision": "fp32",
        "gradient_checkpointing": False,
        "attn": "sdpa",
        "num_workers": 0,
        "per_device_batch_size": 4,
        "global_batch_size": 4,
        "max_length": 384,
        "max_steps": 6,
        "logging_steps": 1,
        "save_steps": 1000,
        "warmup_ratio": 0.0,
        "seed": 0,
    }
