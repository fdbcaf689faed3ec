"""lmms-eval both ways, for real: lmms-eval (in its own venv) runs our adapter through the plugin on a
local parquet task; its results and samples are then imported into our store.

The venv is built by the fixture when missing (``$HARNESS_LMMS_VENV`` or ``<repo>/.venv-lmms``; CI builds
it beforehand with ``python3 bench/lmms_eval_env.py``).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.lmms_eval_env import SHORT_ANSWER, Row, ensure_venv, lmms_env, run_lmms_eval, write_task
from harness.results.store import ResultsStore, default_store_url
from model_adapters.lmms_eval_requests import build_request
from model_adapters.tinyllava import TinyLlavaAdapter
from tests.helpers.tiny_checkpoints import make_tiny_llava

pytestmark = pytest.mark.slow

TASK = "harness_tiny_vqa"
QUESTIONS = [
    "What colour is the circle?",
    "Is there a red square?",
    "How many stars are there?",
    "Where is the triangle?",
    "What shape is blue?",
    "Is the heart on the left?",
    "What colour is the background?",
    "Which shape is largest?",
]


def png(seed: int, size: tuple[int, int]) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def lmms_python() -> Path:
    try:
        return ensure_venv(log=lambda line: print(line, file=sys.stderr))
    except RuntimeError as exc:
        pytest.fail(f"could not build the lmms-eval venv: {exc}")


def expected_answers(ckpt: Path, images: list[bytes]) -> list[str]:
    """What our adapter answers in this process, to the requests the plugin builds from lmms-eval's."""
    adapter = TinyLlavaAdapter.from_spec(str(ckpt), {}, "cpu", 0)
    gen = {"max_new_tokens": 16, "temperature": 0, "do_sample": False, "until": ["\n\n"]}
    requests = [
        build_request(TASK, i, q + SHORT_ANSWER, gen, [Image.open(io.BytesIO(b)).convert("RGB")])
        for i, (q, b) in enumerate(zip(QUESTIONS, images))
    ]
    prepare = adapter.preparer()
    responses = adapter.generate(requests, [prepare(r) for r in requests])
    assert all(r.error is None and r.text for r in responses)
    return [r.text for r in responses]


def test_plugin_run_then_import(lmms_python: Path, tmp_path: Path) -> None:
    ckpt = make_tiny_llava(tmp_path / "ckpt", tower="clip", template="phi")
    images = [png(i, (24 + 8 * i, 40)) for i in range(len(QUESTIONS))]
    answers = expected_answers(ckpt, images)
    # half the targets are the answers our adapter gives, so exact_match must come out at exactly 0.5
    targets = [a if i % 2 == 0 else "zzz-not-an-answer" for i, a in enumerate(answers)]
    rows = [Row(f"q{i}", q, t, b) for i, (q, t, b) in enumerate(zip(QUESTIONS, targets, images))]
    tasks_dir = write_task(tmp_path / "tasks", TASK, rows)

    out = tmp_path / "lmms-out"
    env = lmms_env({"HARNESS_CACHE_DIR": str(tmp_path / "cache"), "HF_DATASETS_CACHE": str(tmp_path / "hf-datasets")})
    args = ["--model", "tinyllava_harness", "--model_args", f"model=tinyllava:{ckpt}", "--tasks", TASK,
            "--include_path", str(tasks_dir), "--batch_size", "4", "--device", "cpu"]  # fmt: skip
    run = run_lmms_eval(lmms_python, args, out, env)

    results = json.loads(run.results.read_text())
    assert results["config"]["model"] == "tinyllava_harness"
    assert results["results"][TASK]["exact_match,none"] == pytest.approx(0.5)
    samples = [json.loads(line) for line in run.samples[TASK].read_text().splitlines()]
    got = {s["doc_id"]: s.get("resps", s["filtered_resps"]) for s in samples}
    assert [got[i] for i in range(len(QUESTIONS))] == answers
    assert [s["exact_match"] for s in sorted(samples, key=lambda s: s["doc_id"])] == [1.0, 0.0] * 4

    store_root = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "import", "lmms-eval", str(out), "--output-dir", str(store_root)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    store = ResultsStore(default_store_url(store_root))
    (row,) = store.runs()
    assert (row.command, row.protocol, row.model_name) == ("import", "lmms-eval", ckpt.name)
    (metric,) = store.headline_metrics(row.id)
    assert (metric.task, metric.name, metric.value, metric.n) == (TASK, "exact_match", pytest.approx(0.5), 8)
    imported = store.get_run(row.id)
    assert imported is not None and imported.spec.answers == str(run.results.resolve())
    log = [json.loads(line) for line in (Path(row.run_dir) / "samples" / f"{TASK}.jsonl").read_text().splitlines()]
    assert [rec["response"]["text"] for rec in log] == answers
    assert [rec["score"] for rec in log] == [1.0, 0.0] * 4
    store.close()
