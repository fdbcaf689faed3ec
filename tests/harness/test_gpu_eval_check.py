"""bench/gpu_check.sh --cpu-smoke: the GPU check's evaluation and training paths at toy shapes on the CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.helpers.paths import REPO


def test_cpu_smoke_runs_the_evaluation_and_training_checks() -> None:
    env = {**os.environ, "PYTHON": sys.executable}
    done = subprocess.run(["bash", "bench/gpu_check.sh", "--cpu-smoke"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout[done.stdout.index("{") : done.stdout.index("\n}") + 2])
    assert (report["device"], report["shape"], report["requests"]) == ("cpu", "toy", 16)
    sdpa = report["sdpa"]
    assert sdpa["answers_identical_batch_1_vs_16"] is True and sdpa["samples_per_s_batch_16"] > 0
    assert isinstance(sdpa["harness_overhead_percent"], float)
    assert report["processes"] == "skipped: fewer than two GPUs"
    assert "tokens_per_second" in done.stdout  # the training check ran after it
