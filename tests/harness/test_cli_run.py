"""End to end through ``python -m harness run``: demo default, a fabricated checkpoint, resume, bad input."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.results.schema import load_results
from harness.results.store import ResultsStore, default_store_url
from tests.helpers.tiny_checkpoints import make_tiny_llava

pytestmark = pytest.mark.slow


def harness(*args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], capture_output=True, text=True, timeout=timeout
    )


def only_run_dir(out: Path) -> Path:
    runs = [p for p in out.iterdir() if (p / "results.json").is_file()]
    assert len(runs) == 1, runs
    return runs[0]


def sample_texts(run_dir: Path, task: str) -> dict[str, str]:
    lines = (run_dir / "samples" / f"{task}.jsonl").read_text().splitlines()
    return {rec["id"]: rec["response"]["text"] for rec in map(json.loads, lines)}


def test_demo_default_runs_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "results"
    proc = harness("run", "--tasks", "gqa,mme", "--limit", "12", "--output-dir", str(out), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "DEMO MODEL" in proc.stderr and "DEMO DATA" in proc.stderr
    run_dir = only_run_dir(out)
    result = load_results(run_dir)
    assert result.status == "complete"
    assert result.model is not None and result.model.is_demo and result.data.is_demo
    assert set(result.tasks) == {"gqa", "mme"}
    gqa, mme = result.tasks["gqa"], result.tasks["mme"]
    assert gqa.n_samples == 12 and gqa.headline == ["accuracy"]
    assert gqa.metrics["accuracy"].stderr is not None and gqa.metrics["accuracy"].ci_low is not None
    assert mme.headline == ["perception", "cognition"] and mme.n_samples == 12
    assert gqa.timing.n_generated == 12 and gqa.timing.samples_per_second
    assert result.data.fingerprints["gqa"] and result.model.fingerprint
    assert "torch" in result.environment.packages and result.git.commit
    assert result.protocol is not None and result.protocol.name == "llava15"
    log = [json.loads(line) for line in (run_dir / "samples" / "gqa.jsonl").read_text().splitlines()]
    assert len(log) == 12 and all(rec["request"]["prompt"].startswith("<image>\n") for rec in log)
    assert all(rec["response"]["error"] is None for rec in log)
    store = ResultsStore(default_store_url(out))
    rows = store.runs()
    assert [r.id for r in rows] == [run_dir.name] and rows[0].is_demo_model and rows[0].is_demo_data
    assert {m.name for m in store.headline_metrics(run_dir.name)} == {"accuracy", "perception", "cognition"}


def test_batch_size_does_not_change_answers(tmp_path: Path) -> None:
    ckpt = make_tiny_llava(tmp_path / "ckpt", tower="siglip", template="phi")
    texts = {}
    for bs in ("1", "8"):
        out = tmp_path / f"out{bs}"
        proc = harness(
            "run", "--tasks", "gqa,mme", "--model", f"tinyllava:{ckpt}", "--limit", "16", "--batch-size", bs,
            "--no-cache", "--output-dir", str(out), "--no-progress",
        )
        assert proc.returncode == 0, proc.stderr
        run_dir = only_run_dir(out)
        texts[bs] = {task: sample_texts(run_dir, task) for task in ("gqa", "mme")}
        assert load_results(run_dir).model.template == "phi"
    assert texts["1"] == texts["8"]
    assert len(texts["1"]["gqa"]) == 16


def _cached_rows(path: Path) -> int:
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(path, timeout=1) as conn:
            return conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def test_killed_run_resumes_with_the_same_results(tmp_path: Path) -> None:
    args = ["--tasks", "gqa", "--limit", "40", "--batch-size", "1", "--num-workers", "0", "--no-progress"]
    reference_out = tmp_path / "reference"
    proc = harness("run", *args, "--no-cache", "--output-dir", str(reference_out))
    assert proc.returncode == 0, proc.stderr

    out = tmp_path / "resumed"
    cache = out / "cache.sqlite"
    victim = subprocess.Popen(
        [sys.executable, "-m", "harness", "run", *args, "--output-dir", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while _cached_rows(cache) < 5 and time.time() < deadline and victim.poll() is None:
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    done_before = _cached_rows(cache)
    assert 5 <= done_before < 40, done_before

    proc = harness("run", *args, "--output-dir", str(out))
    assert proc.returncode == 0, proc.stderr
    finished = [load_results(p) for p in out.iterdir() if (p / "results.json").is_file()]
    complete = [r for r in finished if r.status == "complete"]
    assert len(complete) == 1
    timing = complete[0].tasks["gqa"].timing
    assert timing.n_cached >= done_before and timing.n_generated == 40 - timing.n_cached
    reference = load_results(only_run_dir(reference_out))
    assert complete[0].tasks["gqa"].metrics == reference.tasks["gqa"].metrics
    resumed_dir = out / complete[0].run_id
    assert sample_texts(resumed_dir, "gqa") == sample_texts(only_run_dir(reference_out), "gqa")


def _copy_demo_root(tmp_path: Path) -> Path:
    from harness.data.demo import ensure_demo_root
    from harness.registry import get_tasks

    src = ensure_demo_root(get_tasks("gqa,mme"))
    dst = tmp_path / "root"
    shutil.copytree(src, dst)
    return dst


def _limited_questions(root: Path, limit: int) -> list[dict]:
    """The GQA question-file lines a run with ``--limit`` evaluates (the task's stratified subset)."""
    from tasks.gqa import GQATask

    chosen = {s.id for s in GQATask().subset(GQATask().load(root), limit)}
    lines = (root / "gqa/llava_gqa_testdev_balanced.jsonl").read_text().splitlines()
    return [q for q in map(json.loads, lines) if str(q["question_id"]) in chosen]


def test_unreadable_image_is_recorded_and_the_run_goes_on(tmp_path: Path) -> None:
    root = _copy_demo_root(tmp_path)
    selected = _limited_questions(root, 6)  # what --limit 6 runs (a fixed stratified subset)
    broken = selected[0]["image"]
    (root / "gqa" / "data" / "images" / broken).write_bytes(b"this is not a jpeg")
    bad_ids = {str(q["question_id"]) for q in selected if q["image"] == broken}
    out = tmp_path / "out"
    proc = harness("run", "--tasks", "gqa", "--limit", "6", "--data-root", str(root), "--output-dir", str(out),
                   "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert f"{len(bad_ids)} errors" in proc.stderr
    run_dir = only_run_dir(out)
    record = load_results(run_dir).tasks["gqa"]
    assert record.n_errors == len(bad_ids) and record.n_samples == 6
    log = {rec["id"]: rec for rec in map(json.loads, (run_dir / "samples" / "gqa.jsonl").read_text().splitlines())}
    errored = {sid for sid, rec in log.items() if rec["response"]["error"]}
    assert errored == bad_ids
    error = log[next(iter(bad_ids))]["response"]["error"]
    assert "UnidentifiedImageError" in error and broken in error
    rows = ResultsStore(default_store_url(out)).runs()
    assert json.loads(rows[0].results_json)["tasks"]["gqa"]["n_errors"] == len(bad_ids)


def test_unknown_task_and_adapter_exit_2_listing_valid_names(tmp_path: Path) -> None:
    proc = harness("run", "--tasks", "gqa,vqa3", "--output-dir", str(tmp_path))
    assert proc.returncode == 2
    assert "vqa3" in proc.stderr and "valid tasks: gqa, " in proc.stderr and ", mme" in proc.stderr
    proc = harness("run", "--tasks", "gqa", "--model", "llava9:/x", "--output-dir", str(tmp_path))
    assert proc.returncode == 2 and "llava9" in proc.stderr and "valid adapters: " in proc.stderr
    assert "openai" in proc.stderr and "tinyllava" in proc.stderr


def test_missing_files_are_all_named(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = harness("run", "--tasks", "gqa,mme", "--data-root", str(empty), "--output-dir", str(tmp_path / "o"))
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: missing data files")
    for rel in ("gqa/llava_gqa_testdev_balanced.jsonl", "gqa/data/testdev_balanced_questions.json",
                "gqa/data/images", "MME/llava_mme.jsonl", "MME/eval_tool/Your_Results",
                "MME/MME_Benchmark_release_version"):
        assert str(empty / rel) in lines[0], rel


def test_malformed_question_file_names_file_and_line(tmp_path: Path) -> None:
    root = _copy_demo_root(tmp_path)
    qfile = root / "gqa" / "llava_gqa_testdev_balanced.jsonl"
    lines = qfile.read_text().splitlines()
    lines[2] = lines[2][:-3]
    qfile.write_text("\n".join(lines) + "\n")
    proc = harness("run", "--tasks", "gqa", "--data-root", str(root), "--output-dir", str(tmp_path / "o"))
    assert proc.returncode == 1
    assert f"{qfile}:3: malformed JSON line" in proc.stderr


def test_dataloader_workers_give_the_same_answers_and_record_bad_images(tmp_path: Path) -> None:
    root = _copy_demo_root(tmp_path)
    selected = _limited_questions(root, 24)
    broken = selected[5]["image"]
    (root / "gqa" / "data" / "images" / broken).write_bytes(b"\x89PNG broken")
    texts, errors = {}, {}
    for workers in ("0", "2"):
        out = tmp_path / f"w{workers}"
        proc = harness("run", "--tasks", "gqa", "--limit", "24", "--data-root", str(root), "--num-workers", workers,
                       "--batch-size", "4", "--no-cache", "--output-dir", str(out), "--no-progress")
        assert proc.returncode == 0, proc.stderr
        run_dir = only_run_dir(out)
        log = [json.loads(line) for line in (run_dir / "samples" / "gqa.jsonl").read_text().splitlines()]
        texts[workers] = {rec["id"]: rec["response"]["text"] for rec in log}
        errors[workers] = {rec["id"] for rec in log if rec["response"]["error"]}
        assert load_results(run_dir).spec.num_workers == int(workers)
    assert texts["0"] == texts["2"]
    assert errors["0"] == errors["2"] == {str(q["question_id"]) for q in selected if q["image"] == broken}
