"""Input faults through the real CLI: files nested past Python's recursion limit, and runs or scores that
score nothing. Each ends with exit 1, one line naming the file or the reason, and no traceback.

The data is the built-in demo root (found through a short demo run) copied to a temporary folder.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.data.demo import ensure_demo_root
from harness.registry import get_task
from harness.results.schema import load_results
from tests.helpers.paths import REPO

DEEP = "[" * 100_000 + "]" * 100_000


def harness(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "harness", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=REPO)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(a copy of the demo data root, the samples log of a 6-question GQA run on it)."""
    out = tmp_path_factory.mktemp("demo-run")
    proc = harness("run", "--tasks", "gqa,textvqa", "--limit", "6", "--no-progress", "--output-dir", str(out))
    assert proc.returncode == 0, proc.stderr
    run_dir = next(p for p in out.iterdir() if (p / "results.json").is_file())
    root = tmp_path_factory.mktemp("demo-root") / "data"
    shutil.copytree(load_results(run_dir).data.root, root)
    return root, run_dir / "samples" / "gqa.jsonl"


def fails_cleanly(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and all(n in last for n in needles), last
    return last


def test_a_deeply_nested_answers_line_names_the_file_and_line(demo: tuple[Path, Path], tmp_path: Path) -> None:
    root, log = demo
    answers = tmp_path / "answers.jsonl"
    answers.write_text(log.read_text(encoding="utf-8") + DEEP + "\n", encoding="utf-8")
    lines = len(log.read_text(encoding="utf-8").splitlines()) + 1
    fails_cleanly(harness("score", "gqa", "--answers", str(answers), "--data-root", str(root)),
                  f"{answers}:{lines}", "nested too deeply")  # fmt: skip


def test_a_deeply_nested_data_file_names_the_file(demo: tuple[Path, Path], tmp_path: Path) -> None:
    root, log = demo
    broken = tmp_path / "data"
    shutil.copytree(root, broken)
    questions = broken / "gqa/data/testdev_balanced_questions.json"
    questions.write_text(DEEP, encoding="utf-8")
    fails_cleanly(harness("score", "gqa", "--answers", str(log), "--data-root", str(broken)),
                  str(questions), "nested too deeply")  # fmt: skip


def test_answers_of_another_task_score_nothing(demo: tuple[Path, Path]) -> None:
    """GQA answers scored as TextVQA: no line matches a TextVQA question, which is an error, not 0.00."""
    root, log = demo
    fails_cleanly(harness("score", "textvqa", "--answers", str(log), "--data-root", str(root)), "textvqa")


def test_an_empty_question_file_scores_nothing(demo: tuple[Path, Path], tmp_path: Path) -> None:
    root, log = demo
    broken = tmp_path / "data"
    shutil.copytree(root, broken)
    (broken / "gqa/data/testdev_balanced_questions.json").write_text("{}", encoding="utf-8")
    (broken / "gqa/llava_gqa_testdev_balanced.jsonl").write_text("", encoding="utf-8")
    proc = harness("score", "gqa", "--answers", str(log), "--data-root", str(broken))
    fails_cleanly(proc, "gqa", "nothing to score")


def test_a_run_whose_every_image_fails_is_a_failed_run(demo: tuple[Path, Path], tmp_path: Path) -> None:
    root, _ = demo
    broken = tmp_path / "data"
    shutil.copytree(root, broken)
    for image in (broken / "gqa/data/images").iterdir():
        image.write_bytes(b"not an image")
    out = tmp_path / "out"
    proc = harness("run", "--tasks", "gqa", "--limit", "4", "--data-root", str(broken), "--no-progress",
                   "--output-dir", str(out))  # fmt: skip
    fails_cleanly(proc, "gqa", "no sample has an answer", "errors")
    run_dir = next(p for p in out.iterdir() if (p / "results.json").is_file())
    result = load_results(run_dir)
    assert result.status == "failed" and result.tasks["gqa"].n_errors == result.tasks["gqa"].n_samples
    assert json.loads((run_dir / "samples" / "gqa.jsonl").read_text().splitlines()[0])["response"]["error"]


def test_image_paths_leaving_the_root_and_fifos_are_sample_errors(demo: tuple[Path, Path], tmp_path: Path) -> None:
    """A question file naming ``../`` or an absolute image path is not read, and a FIFO among the images
    does not hang the run: each is one sample error with its reason; the other samples are answered."""
    import os

    root, _ = demo
    broken = tmp_path / "data"
    shutil.copytree(root, broken)
    questions = broken / "gqa/llava_gqa_testdev_balanced.jsonl"
    lines = [json.loads(line) for line in questions.read_text(encoding="utf-8").splitlines()[:4]]
    os.mkfifo(broken / "gqa/data/images/fifo.jpg")
    outside = tmp_path / "outside.jpg"
    shutil.copy(next((broken / "gqa/data/images").glob("*.jpg")), outside)
    lines[0]["image"] = "../../../../outside.jpg"  # images -> data -> gqa -> root -> beside the root
    lines[1]["image"] = str(outside)
    lines[2]["image"] = "fifo.jpg"
    questions.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    out = tmp_path / "out"
    proc = harness("run", "--tasks", "gqa", "--data-root", str(broken), "--no-progress", "--output-dir", str(out))
    assert proc.returncode == 0, proc.stderr
    run_dir = next(p for p in out.iterdir() if (p / "results.json").is_file())
    records = [json.loads(line) for line in (run_dir / "samples" / "gqa.jsonl").read_text().splitlines()]
    errors = {r["id"]: (r["response"] or {}).get("error") or "" for r in records}
    assert sum(bool(e) for e in errors.values()) == 3 and len(errors) == 4
    texts = " ".join(errors.values())
    assert texts.count("leaves the data root") == 2 and "not a regular file" in texts


def _llava_answers(log: Path) -> list[dict]:
    """The samples log as LLaVA answers lines (question_id, text)."""
    records = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    return [{"question_id": r["id"], "text": r["response"]["text"]} for r in records]


@pytest.mark.parametrize("bad", [None, 5, True, ["yes"], {"a": 1}, float("nan")], ids=repr)
def test_an_answer_text_that_is_no_string_is_a_counted_error(
    demo: tuple[Path, Path], tmp_path: Path, bad: object
) -> None:
    root, log = demo
    lines = _llava_answers(log)
    lines[0]["text"] = bad
    answers = tmp_path / "answers.jsonl"
    answers.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    out = tmp_path / "out"
    proc = harness("score", "gqa", "--answers", str(answers), "--data-root", str(root), "--json",
                   "--output-dir", str(out))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["n_errors"] == 1
    run_dir = next(p for p in out.iterdir() if (p / "results.json").is_file())
    logged = (run_dir / "samples" / "gqa.jsonl").read_text(encoding="utf-8")
    assert f"{answers}:1: 'text' is " in logged and "not a string" in logged


@pytest.mark.parametrize("bad", ["yes", ["yes"], {"text": 5}, {"text": "yes", "seconds": "slow"}], ids=repr)
def test_a_samples_log_response_that_is_no_response_is_a_counted_error(
    demo: tuple[Path, Path], tmp_path: Path, bad: object
) -> None:
    root, log = demo
    records = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    records[0]["response"] = bad
    damaged = tmp_path / "gqa.jsonl"
    damaged.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    proc = harness("score", "gqa", "--answers", str(damaged), "--data-root", str(root), "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["n_errors"] == 1


def test_answers_that_are_all_unreadable_fail_the_score(demo: tuple[Path, Path], tmp_path: Path) -> None:
    root, log = demo
    lines = [{**line, "text": 0} for line in _llava_answers(log)]
    answers = tmp_path / "answers.jsonl"
    answers.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    fails_cleanly(harness("score", "gqa", "--answers", str(answers), "--data-root", str(root)),
                  "gqa", "no sample has an answer")  # fmt: skip


def _set_in_json(rel: str, change: Callable[[Any], None]) -> Callable[[Path], None]:
    def apply(root: Path) -> None:
        path = root / rel
        data = json.loads(path.read_text(encoding="utf-8"))
        change(data)
        path.write_text(json.dumps(data), encoding="utf-8")

    return apply


def _first_line_text_null(root: Path) -> None:
    path = root / "llava-bench-in-the-wild" / "answers_gpt4.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[0] = json.dumps({**json.loads(lines[0]), "text": None})
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


GROUND_TRUTH_FAULTS = {
    "gqa": (_set_in_json("gqa/data/testdev_balanced_questions.json",
                         lambda d: next(iter(d.values())).__setitem__("answer", None)),
            "testdev_balanced_questions.json", "'answer' must be a string, got NoneType"),
    "textvqa": (_set_in_json("textvqa/TextVQA_0.5.1_val.json", lambda d: d["data"][0]["answers"].__setitem__(0, 7)),
                "TextVQA_0.5.1_val.json", "answers must be strings"),
    "scienceqa": (_set_in_json("scienceqa/problems.json", lambda d: next(iter(d.values())).__setitem__("answer", "B")),
                  "problems.json", "'answer'"),
    "vqav2_val": (_set_in_json("vqav2/v2_mscoco_val2014_annotations.json",
                               lambda d: d["annotations"][0]["answers"][0].__setitem__("answer", None)),
                  "v2_mscoco_val2014_annotations.json", "has no 'answer' string"),
    "mmvet": (_set_in_json("mm-vet/mm-vet.json", lambda d: next(iter(d.values())).__setitem__("answer", ["a"])),
              "mm-vet.json", "'answer' must be a string, got list"),
    "llava_bench": (_first_line_text_null, "answers_gpt4.jsonl:1", "'text' must be a string, got NoneType"),
}  # fmt: skip


@pytest.mark.parametrize("task", list(GROUND_TRUTH_FAULTS))
def test_ground_truth_that_is_no_text_is_one_line_naming_the_file(tmp_path: Path, task: str) -> None:
    """A null or non-string answer in the official files stops the score (no silent 0 for every question)."""
    change, file_name, needle = GROUND_TRUTH_FAULTS[task]
    root = tmp_path / "data"
    shutil.copytree(ensure_demo_root([get_task(task)]), root)
    change(root)
    answers = tmp_path / "answers.jsonl"
    answers.write_text(json.dumps({"question_id": "1", "text": "yes"}) + "\n", encoding="utf-8")
    judge = ["--judge", "demo"] if task in ("mmvet", "llava_bench") else []
    proc = harness("score", task, "--answers", str(answers), "--data-root", str(root), *judge)
    fails_cleanly(proc, file_name, needle)
