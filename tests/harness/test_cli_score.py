"""``python -m harness score``, ``list`` and ``data`` through the CLI, on demo and real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.data.check import data_fingerprint
from harness.registry import get_task
from harness.results.schema import load_results
from harness.results.store import ResultsStore, default_store_url
from tests.helpers import score_cli
from tests.helpers.paths import REALDATA
from tests.helpers.score_cli import link_root

MME_REAL = REALDATA / "mme"
QUESTIONS = "gqa/data/testdev_balanced_questions.json"


def harness(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def demo_root() -> Path:
    from harness.data.demo import ensure_demo_root
    from harness.registry import get_tasks

    return ensure_demo_root(get_tasks("gqa,mme"))


def _gqa_truth_answers(root: Path, path: Path, wrong_every: int = 0) -> int:
    questions = json.loads((root / "gqa/data/testdev_balanced_questions.json").read_text())
    lines, wrong = [], 0
    for i, line in enumerate((root / "gqa/llava_gqa_testdev_balanced.jsonl").read_text().splitlines()):
        q = json.loads(line)
        text = questions[q["question_id"]]["answer"].capitalize() + "."  # LLaVA's conversion lower-cases, strips "."
        if wrong_every and i % wrong_every == 0:
            text, wrong = "zebra", wrong + 1
        lines.append(json.dumps({"question_id": q["question_id"], "prompt": q["text"], "text": text}))
    path.write_text("\n".join(lines) + "\n")
    return wrong


def test_score_json_prints_one_object_and_nothing_else(demo_root: Path, tmp_path: Path) -> None:
    answers = tmp_path / "answers.jsonl"
    wrong = _gqa_truth_answers(demo_root, answers, wrong_every=4)
    proc = harness("score", "gqa", "--data-root", str(demo_root), "--answers", str(answers), "--json")
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)  # the whole stdout is one JSON document
    n = payload["n_samples"]
    assert payload["task"] == "gqa" and payload["headline"] == ["accuracy"]
    assert payload["scores"]["accuracy"] == pytest.approx(100 * (n - wrong) / n)
    assert payload["metrics"]["accuracy"]["value"] == payload["scores"]["accuracy"]
    assert payload["n_missing"] == 0


def test_the_quick_exit_after_score_flushes_output_runs_atexit_and_keeps_the_exit_code(
    demo_root: Path, tmp_path: Path
) -> None:
    """``harness score`` keeps its results to the end and leaves without freeing them (``harness.cli.cli``): its
    output must still be whole, the atexit handlers must still run, and the exit code must be the command's."""
    answers = tmp_path / "answers.jsonl"
    _gqa_truth_answers(demo_root, answers, wrong_every=4)
    entry = (
        "import atexit, sys; atexit.register(lambda: print('atexit ran', file=sys.stderr)); "
        "from harness.cli import cli; sys.argv = ['harness', *sys.argv[1:]]; cli()"
    )
    base = ["score", "gqa", "--data-root", str(demo_root), "--answers"]
    proc = subprocess.run([sys.executable, "-c", entry, *base, str(answers), "--json"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stderr.endswith("atexit ran\n"), proc.stderr
    assert json.loads(proc.stdout) == json.loads(harness(*base, str(answers), "--json").stdout)
    unanswerable = tmp_path / "other.jsonl"  # no line matches a question: exit 1 with the reason on stderr
    unanswerable.write_text('{"question_id": "no-such-question", "text": "yes"}\n')
    proc = subprocess.run([sys.executable, "-c", entry, *base, str(unanswerable), "--json"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "error: " in proc.stderr and proc.stderr.endswith("atexit ran\n"), proc.stderr


def test_an_interrupted_score_says_that_nothing_was_written(demo_root: Path, tmp_path: Path) -> None:
    """Ctrl-C while ``score`` reads its answers: exit 130 and one line that says no results were written (``score``
    has nothing to resume, unlike ``run``), and no run directory is left behind."""
    import signal
    import time

    answers = tmp_path / "answers.jsonl"
    os.mkfifo(answers)  # the reader blocks in it until the test has seen it open, then gets Ctrl-C
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "score", "gqa", "--data-root", str(demo_root), "--answers", str(answers),
         "--output-dir", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # a runner may start tests ignoring Ctrl-C
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while True:  # opening the write end succeeds only once the command has opened the read end
        try:
            writer = os.open(answers, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    os.close(writer)
    assert proc.returncode == 130, stderr
    assert stderr.splitlines()[-1] == "interrupted: no results were written", stderr
    assert not out.exists() or not any(out.iterdir())


def test_score_saves_a_run_and_reports_missing_answers(demo_root: Path, tmp_path: Path) -> None:
    answers = tmp_path / "answers.jsonl"
    _gqa_truth_answers(demo_root, answers)
    lines = answers.read_text().splitlines()
    answers.write_text("\n".join(lines[:-3]) + "\n")
    out = tmp_path / "out"
    proc = harness("score", "gqa", "--data-root", str(demo_root), "--answers", str(answers), "--output-dir", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "3 samples have no answer" in proc.stdout
    run_dir = next(p for p in out.iterdir() if p.is_dir())
    result = load_results(run_dir)
    record = result.tasks["gqa"]
    assert result.spec.command == "score" and record.n_missing == 3 and record.n_samples > 3
    # eval.py refuses an incomplete file; the harness scores the missing answers as wrong and says so
    n = record.n_samples
    assert record.metrics["accuracy"].value == pytest.approx(100.0 * (n - 3) / n)
    assert any("no answer" in note for note in record.notes)
    assert [r.id for r in ResultsStore(default_store_url(out)).runs()] == [run_dir.name]


def test_score_reads_a_samples_log_of_a_run(demo_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = harness("run", "--tasks", "mme", "--limit", "8", "--output-dir", str(out), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    run_dir = next(p for p in out.iterdir() if (p / "results.json").is_file())
    proc = harness("score", "mme", "--data-root", str(demo_root), "--answers", str(run_dir / "samples/mme.jsonl"),
                   "--json")
    assert proc.returncode == 0, proc.stderr
    rescored = json.loads(proc.stdout)
    original = load_results(run_dir).tasks["mme"]
    assert rescored["scores"]["perception"] == pytest.approx(original.metrics["perception"].value)
    assert rescored["scores"]["cognition"] == pytest.approx(original.metrics["cognition"].value)


def test_score_rejects_unknown_answer_format_with_file_and_line(demo_root: Path, tmp_path: Path) -> None:
    answers = tmp_path / "weird.jsonl"
    answers.write_text('{"qid": 1, "answer": "yes"}\n')
    proc = harness("score", "gqa", "--data-root", str(demo_root), "--answers", str(answers))
    assert proc.returncode == 1 and f"{answers}:1: unknown answers format" in proc.stderr


def _mme_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "MME" / "eval_tool").mkdir(parents=True)
    (root / "MME" / "llava_mme.jsonl").symlink_to(MME_REAL / "llava_mme.jsonl")
    (root / "MME" / "eval_tool" / "Your_Results").symlink_to(MME_REAL / "eval_tool" / "Your_Results")
    return root


@pytest.mark.skipif(not MME_REAL.is_dir(), reason=f"real MME files not found at {MME_REAL}")
def test_score_mme_llava_13b_answers_give_the_published_numbers(tmp_path: Path) -> None:
    answers = MME_REAL / "answers" / "llava-v1.5-13b.jsonl"
    proc = harness("score", "mme", "--data-root", str(_mme_root(tmp_path)), "--answers", str(answers), "--json")
    assert proc.returncode == 0, proc.stderr
    scores = json.loads(proc.stdout)["scores"]
    assert scores["perception"] == pytest.approx(1531.3187, abs=1e-4)
    assert scores["cognition"] == pytest.approx(295.3571, abs=1e-4)


@pytest.mark.skipif(not MME_REAL.is_dir(), reason=f"real MME files not found at {MME_REAL}")
@pytest.mark.parametrize(
    ("folder", "perception", "cognition"),
    [("LaVIN", 963.61, 249.64), ("answers/llava-v1.5-7b", 1508.6726137691257, 355.7142857142857)],
)
def test_score_mme_eval_tool_folders(folder: str, perception: float, cognition: float) -> None:
    proc = harness("score", "mme", "--answers", str(MME_REAL / "eval_tool" / folder), "--json")
    assert proc.returncode == 0, proc.stderr
    scores = json.loads(proc.stdout)["scores"]
    assert scores["perception"] == pytest.approx(perception, abs=5e-3)
    assert scores["cognition"] == pytest.approx(cognition, abs=5e-3)


def test_list_shows_tasks_and_adapters() -> None:
    proc = harness("list", "--json")
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    tasks = {t["name"]: t for t in payload["tasks"]}
    assert set(tasks) >= {"gqa", "mme"}
    assert tasks["mme"]["headline"] == ["perception", "cognition"] and tasks["mme"]["judged"] is False
    assert any(f["path"] == "gqa/data/images" and f["needed_for"] == "run" for f in tasks["gqa"]["files"])
    assert {"tinyllava", "openai"} <= {m["name"] for m in payload["models"]}
    assert all("default_judge" in t for t in payload["tasks"])


def test_list_groups_the_files_to_score_and_the_files_only_to_run() -> None:
    proc = harness("list", "--json")
    assert proc.returncode == 0, proc.stderr
    tasks = {t["name"]: t for t in json.loads(proc.stdout)["tasks"]}
    for name, task in tasks.items():
        paths = [f["path"] for f in task["files"]]
        assert sorted(task["score_files"] + task["run_only_files"]) == sorted(paths), name
        assert task["score_files"] == [f["path"] for f in task["files"] if f["needed_for"] == "score"], name
    # the official scorers of these read no LLaVA question file: only a run needs it (and the images)
    assert tasks["textvqa"]["score_files"] == ["textvqa/TextVQA_0.5.1_val.json"]
    assert tasks["textvqa"]["run_only_files"] == ["textvqa/llava_textvqa_val_v051_ocr.jsonl", "textvqa/train_images"]
    assert tasks["scienceqa"]["score_files"] == ["scienceqa/problems.json", "scienceqa/pid_splits.json"]
    assert tasks["scienceqa"]["run_only_files"] == ["scienceqa/llava_test_CQM-A.json", "scienceqa/images/test"]
    assert tasks["gqa"]["score_files"] == ["gqa/data/testdev_balanced_questions.json"]
    assert "gqa/llava_gqa_testdev_balanced.jsonl" in tasks["gqa"]["run_only_files"]
    assert tasks["mmbench"]["run_only_files"] == []

    proc = subprocess.run([sys.executable, "-m", "harness", "list"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "250"})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    header = next(line for line in proc.stdout.splitlines() if "to score (and run)" in line)
    assert "only to run" in header
    row = next(line for line in proc.stdout.splitlines() if line.startswith("│ textvqa "))
    cells = [cell.strip() for cell in row.split("│")]
    assert cells[-3:-1] == ["textvqa/TextVQA_0.5.1_val.json", "textvqa/llava_textvqa_val_v051_ocr.jsonl"]


def test_gqa_scores_without_the_question_file_and_runs_only_with_it(demo_root: Path, tmp_path: Path) -> None:
    answers = tmp_path / "answers.jsonl"
    _gqa_truth_answers(demo_root, answers, wrong_every=3)
    lines = answers.read_text().splitlines()
    answers.write_text("\n".join(lines[2:]) + "\n")  # two questions unanswered (scored as wrong)
    bare = link_root(tmp_path / "bare", {QUESTIONS: demo_root / QUESTIONS})
    result, log = score_cli.score("gqa", answers, demo_root, tmp_path / "out-full")
    assert score_cli.score("gqa", answers, bare, tmp_path / "out-bare") == (result, log)
    assert result["n_missing"] == 2 and len(log) == result["n_samples"] == len(lines)
    fingerprints = {score_cli.data_fingerprint(tmp_path / out, "gqa") for out in ("out-full", "out-bare")}
    assert fingerprints == {data_fingerprint(get_task("gqa"), bare, "score")}
    assert data_fingerprint(get_task("gqa"), demo_root) != data_fingerprint(get_task("gqa"), demo_root, "score")

    message = score_cli.run_error("gqa", bare, tmp_path / "out-run")
    assert str(bare / "gqa/llava_gqa_testdev_balanced.jsonl") in message and QUESTIONS not in message

    proc = harness("data", "gqa", "--data-root", str(bare))
    assert proc.returncode == 1 and "run only" in proc.stdout and "MISSING" in proc.stdout
    assert f"{len(lines)} samples (enough to score answers" in proc.stdout


def test_data_check_names_missing_files_and_sources(demo_root: Path, tmp_path: Path) -> None:
    proc = harness("data", "gqa", "--data-root", str(demo_root))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "samples" in proc.stdout
    partial = tmp_path / "partial"
    (partial / "gqa").mkdir(parents=True)
    (partial / "gqa" / "llava_gqa_testdev_balanced.jsonl").write_text("")
    proc = harness("data", "gqa", "--data-root", str(partial))
    assert proc.returncode == 1
    assert "MISSING" in proc.stdout and "stanford" in proc.stdout.lower()


def test_unknown_ids_and_duplicates_are_counted_not_silent(demo_root: Path, tmp_path: Path) -> None:
    answers = tmp_path / "answers.jsonl"
    _gqa_truth_answers(demo_root, answers)
    lines = answers.read_text().splitlines()
    first = json.loads(lines[0])
    wrong_first = json.dumps({**first, "text": "zebra"})
    extra = json.dumps({"question_id": "not-a-question", "prompt": "?", "text": "yes"})
    # the wrong answer comes first and the right one later: the later line wins, as LLaVA's converter
    answers.write_text("\n".join([wrong_first, *lines, extra]) + "\n")
    proc = harness("score", "gqa", "--data-root", str(demo_root), "--answers", str(answers), "--json")
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(proc.stdout)
    assert payload["scores"]["accuracy"] == pytest.approx(100.0)
    notes = " ".join(payload["notes"])
    assert "1 duplicate answer line(s)" in notes and "1 answer line(s) match no question" in notes
