"""bench/gpu_train_check.sh --cpu-smoke: the GPU check's own code path, at toy shapes on the CPU."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.helpers.paths import REPO as REPO_ROOT

ROOT = REPO_ROOT


def test_cpu_smoke_run_trains_and_reports_throughput() -> None:
    env = {**os.environ, "PYTHON": sys.executable}
    done = subprocess.run(
        ["bash", "bench/gpu_train_check.sh", "--cpu-smoke", "--deepspeed", "none"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    report = dict(re.findall(r"^\s*(\w+): (.*)$", done.stdout, flags=re.MULTILINE))
    assert report["device"] == "cpu"
    assert report["shape"] == "toy"
    assert report["steps"] == "4"  # --cpu-smoke asks for 4 steps
    assert report["attention"] == "sdpa"
    assert report["flash_attention_used"] == "False"
    assert report["peak_memory_GiB"] == "None"  # no GPU memory to report
    assert float(report["tokens_per_second"]) > 0
    first, last = (float(x) for x in report["loss_first_last"].strip("[]").split(","))
    assert first > 0 and last > 0
