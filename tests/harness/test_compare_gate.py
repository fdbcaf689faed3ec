"""``harness compare``, ``gate`` and ``plan`` through the CLI on real run directories.

The runs come from ``harness run`` on the demo data with two tiny checkpoints: one that answers "Yes"
to everything (right on half of MME, on GQA's yes-questions) and a deliberately damaged copy of it
(two LM-head rows swapped: it stops before answering).
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.results.schema import load_results
from harness.results.store import default_store_url
from tests.helpers.fixed_answer_model import damage_checkpoint, make_fixed_answer_model

pytestmark = pytest.mark.slow
TASKS = "gqa,mme,scienceqa"


def harness(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, timeout=600,
                          cwd=cwd)  # fmt: skip


def run_dir(out: Path) -> Path:
    (found,) = [p for p in out.iterdir() if (p / "results.json").is_file()]
    return found


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("gate")
    good = make_fixed_answer_model(base / "yes-model")
    bad = damage_checkpoint(good, base / "damaged-model")
    dirs = {}
    for label, ckpt in (("good", good), ("again", good), ("bad", bad)):
        out = base / label
        proc = harness("run", "--tasks", TASKS, "--model", f"tinyllava:{ckpt}", "--limit", "24",
                       "--output-dir", str(out), "--no-progress")  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        dirs[label] = run_dir(out)
    return dirs


def test_run_records_bootstrap_intervals(runs: dict[str, Path]) -> None:
    result = load_results(runs["good"])
    gqa = result.tasks["gqa"].metrics["accuracy"]
    assert gqa.value > 0 and gqa.ci_low is not None and gqa.ci_low < gqa.value < gqa.ci_high
    assert gqa.method.startswith("cluster bootstrap: 1000 resamples of") and "images" in gqa.method
    assert "within each of" in result.tasks["mme"].metrics["perception"].method
    # the same subset every time: the second run evaluated the same ids
    first, second = (load_results(runs[k]).tasks["mme"] for k in ("good", "again"))
    ids = [[json.loads(x)["id"] for x in (runs[k] / "samples/mme.jsonl").read_text().splitlines()] for k in
           ("good", "again")]  # fmt: skip
    assert ids[0] == ids[1] and first.metrics == second.metrics


def test_compare_json_pairs_samples_and_reports_differences_tests_and_flips(runs: dict[str, Path]) -> None:
    proc = harness("compare", str(runs["good"]), str(runs["bad"]), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    tasks = {t["task"]: t for t in report["tasks"]}
    assert list(tasks) == ["gqa", "mme", "scienceqa"]
    gqa = tasks["gqa"]
    assert gqa["n_paired"] == 24 and gqa["only_a"] == gqa["only_b"] == 0
    (acc,) = gqa["metrics"]
    recorded = load_results(runs["good"]).tasks["gqa"].metrics["accuracy"].value
    assert acc["a"] == pytest.approx(recorded) and acc["b"] == 0.0
    assert acc["diff"] == pytest.approx(-recorded) and acc["high"] < 0 and acc["verdict"] == "worse"
    assert acc["test"].startswith("clustered McNemar") and acc["a_only"] == round(recorded * 24 / 100)
    assert acc["p_value"] < 0.05 and acc["b_only"] == 0
    assert gqa["n_flips"] == acc["a_only"] and len(gqa["flips"]) == gqa["n_flips"]
    flip = gqa["flips"][0]
    assert flip["answer_a"] == "Yes" and flip["answer_b"] == "" and (flip["score_a"], flip["score_b"]) == (1.0, 0.0)
    assert flip["question"].startswith(("Is ", "Are ", "Does ", "Do "))
    mme = {m["metric"]: m for m in tasks["mme"]["metrics"]}
    assert mme["perception"]["test"] == "paired bootstrap" and mme["perception"]["verdict"] == "worse"
    perception = load_results(runs["good"]).tasks["mme"].metrics["perception"].value
    assert mme["perception"]["diff"] == pytest.approx(-perception)
    (sqa,) = tasks["scienceqa"]["metrics"]  # "Yes" is never a ScienceQA letter: 0 in both
    assert sqa["verdict"] == "no detectable change" and sqa["test"] == "McNemar exact (binomial)"
    assert sqa["p_value"] == 1.0 and tasks["scienceqa"]["n_flips"] == 0


def test_compare_markdown_to_a_file_for_chosen_tasks(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "report.md"
    proc = harness("compare", str(runs["good"]), str(runs["bad"]), "--tasks", "gqa,scienceqa", "--output", str(out),
                   "--max-flips", "2")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert "| task | metric | A (paired) | B (paired) | Δ (B − A) | 95% CI | test | p | verdict |" in text
    assert "| gqa | accuracy |" in text and "**worse**" in text and "**no detectable change**" in text
    assert "mme" not in text.split("####")[0].split("| --- |")[-1]
    assert "samples changed score (first 2)" in text and "| Yes | 1.00 |  | 0.00 |" in text


def test_compare_a_run_with_itself_detects_no_change(runs: dict[str, Path]) -> None:
    proc = harness("compare", str(runs["good"]), str(runs["again"]), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    metrics = [m for t in json.loads(proc.stdout)["tasks"] for m in t["metrics"]]
    assert len(metrics) == 4 and {m["verdict"] for m in metrics} == {"no detectable change"}
    assert all(m["diff"] == 0.0 for m in metrics)


def test_gate_fails_on_the_damaged_model_and_passes_on_the_same_model(runs: dict[str, Path], tmp_path: Path) -> None:
    baseline = tmp_path / "ci" / "baseline.json"
    proc = harness("gate", "--write-baseline", str(runs["good"]), "--output", str(baseline))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(baseline.read_text())
    assert data["format"] == "harness-baseline" and data["source"]["limit"] == 24
    assert set(data["tasks"]) == {"gqa", "mme", "scienceqa"}
    assert set(data["tasks"]["mme"]["samples"][0]["detail"]) == {"subtask", "pair"}

    md, junit = tmp_path / "gate.md", tmp_path / "junit.xml"
    proc = harness("gate", "--baseline", str(baseline), "--candidate", str(runs["bad"]),
                   "--markdown", str(md), "--junit", str(junit))  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    text = md.read_text()
    assert text.startswith("## ❌ harness gate: 3 of 4 checks failed") and text == proc.stdout
    for metric in ("gqa / accuracy", "mme / perception", "mme / cognition"):
        assert f"**{metric}**: dropped by" in text
    assert "scienceqa / img" not in text.split("|")[0]
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == "4" and suite.get("failures") == "3"
    cases = {(c.get("classname"), c.get("name")): c for c in suite.iter("testcase")}
    assert set(cases) == {("harness.gate.gqa", "accuracy"), ("harness.gate.mme", "perception"),
                          ("harness.gate.mme", "cognition"), ("harness.gate.scienceqa", "img_accuracy")}  # fmt: skip
    failure = cases[("harness.gate.gqa", "accuracy")].find("failure")
    assert failure is not None and "significantly" in failure.get("message", "")
    assert cases[("harness.gate.scienceqa", "img_accuracy")].find("failure") is None

    proc = harness("gate", "--baseline", str(baseline), "--candidate", str(runs["again"]), "--junit", str(junit))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("## ✅ harness gate: all 4 checks passed")
    assert ET.parse(junit).getroot().get("failures") == "0"


def test_gate_tolerances_per_task(runs: dict[str, Path]) -> None:
    proc = harness("gate", "--baseline", str(runs["good"]), "--candidate", str(runs["bad"]),
                   "--max-drop", "1.0", "--max-drop", "mme=1000,gqa.accuracy=99")  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "but not significantly" not in proc.stdout and "within the tolerance 99" in proc.stdout
    proc = harness("gate", "--baseline", str(runs["good"]), "--candidate", str(runs["bad"]), "--tasks", "gqa",
                   "--alpha", "0.000001")  # fmt: skip
    assert proc.returncode == 0 and "but not significantly" in proc.stdout  # a drop, not significant at that alpha


def test_gate_and_compare_errors_are_one_line(runs: dict[str, Path], tmp_path: Path) -> None:
    proc = harness("gate", "--baseline", str(runs["good"]))
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: gate needs --candidate (or --write-baseline RUN --output FILE)"
    missing = tmp_path / "nope"
    proc = harness("compare", str(missing), str(runs["good"]), "--store", f"sqlite:///{tmp_path / 'h.db'}")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and proc.stderr.startswith(f"error: A: '{missing}'")
    proc = harness("gate", "--baseline", str(runs["good"]), "--candidate", str(runs["bad"]), "--max-drop", "x")
    assert proc.returncode == 2 and "--max-drop: 'x'" in proc.stderr
    bad_file = tmp_path / "baseline.json"
    bad_file.write_text('{"format": "harness-baseline", "format_version": 9}')
    proc = harness("gate", "--baseline", str(bad_file), "--candidate", str(runs["bad"]))
    assert proc.returncode == 1 and "format_version 9" in proc.stderr and proc.stderr.count("\n") == 1


def test_compare_by_store_run_ids(runs: dict[str, Path]) -> None:
    store = default_store_url(runs["good"].parent)
    other = default_store_url(runs["bad"].parent)
    assert store != other  # each run recorded into its own results root; pass one store and a directory
    proc = harness("compare", runs["good"].name, str(runs["bad"]), "--store", store, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["a"]["source"] == f"store:{runs['good'].name}"


def test_plan_sizes_a_subset_from_a_run(runs: dict[str, Path]) -> None:
    proc = harness("plan", "--task", "gqa", "--detect", "10", "--run", str(runs["good"]), "--json")
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    assert plan["metric"] == "accuracy" and plan["unit"] == "image" and plan["clusters_needed"] >= 2
    assert plan["limit"] == plan["samples_needed"] and plan["formula"].startswith("normal approximation")
    proc = harness("plan", "--task", "gqa", "--detect", "10", "--run", str(runs["good"]), "--against", str(runs["bad"]))
    assert proc.returncode == 0, proc.stderr
    assert "use --limit" in proc.stdout and "paired bootstrap against" in proc.stdout
    proc = harness("plan", "--task", "mmbench", "--detect", "10", "--run", str(runs["good"]))
    assert proc.returncode == 2 and "has no task mmbench" in proc.stderr


def _gqa_answers(root: Path, path: Path, wrong_every: int) -> None:
    questions = json.loads((root / "gqa/data/testdev_balanced_questions.json").read_text())
    lines = []
    for i, line in enumerate((root / "gqa/llava_gqa_testdev_balanced.jsonl").read_text().splitlines()):
        q = json.loads(line)
        text = "zebra" if wrong_every and i % wrong_every == 0 else questions[q["question_id"]]["answer"]
        lines.append(json.dumps({"question_id": q["question_id"], "prompt": q["text"], "text": text}))
    path.write_text("\n".join(lines) + "\n")


def test_compare_runs_saved_by_score(tmp_path: Path) -> None:
    from harness.data.demo import ensure_demo_root
    from harness.registry import get_tasks

    root = ensure_demo_root(get_tasks("gqa"))
    dirs = []
    for name, wrong_every in (("perfect", 0), ("some-wrong", 3)):
        answers = tmp_path / f"{name}.jsonl"
        _gqa_answers(root, answers, wrong_every)
        out = tmp_path / name
        proc = harness("score", "gqa", "--data-root", str(root), "--answers", str(answers), "--output-dir", str(out))
        assert proc.returncode == 0, proc.stderr
        dirs.append(run_dir(out))
    proc = harness("compare", str(dirs[0]), str(dirs[1]), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    (task,) = json.loads(proc.stdout)["tasks"]
    (acc,) = task["metrics"]
    assert acc["a"] == 100.0 and acc["b"] == pytest.approx(100 * (1 - 40 / 120)) and acc["verdict"] == "worse"
    assert task["n_paired"] == 120 and task["n_flips"] == 40 and task["flips"][0]["answer_b"] == "zebra"
    proc = harness("gate", "--baseline", str(dirs[0]), "--candidate", str(dirs[1]))
    assert proc.returncode == 1 and "gqa / accuracy" in proc.stdout


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The README's first command: ``harness run --tasks gqa,mme`` on the demo (every sample, no --limit)."""
    cwd = tmp_path_factory.mktemp("readme")
    proc = harness("run", "--tasks", "gqa,mme", "--no-progress", cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return run_dir(cwd / "results")


def test_readme_gate_example_passes_on_the_demo_run_and_names_the_tasks_not_run(demo_run: Path,
                                                                                 tmp_path: Path) -> None:
    from tests.helpers.paths import REPO

    baseline = REPO / "ci" / "baseline.json"
    assert set(json.loads(baseline.read_text())["tasks"]) > {"gqa", "mme"}  # CI's six tasks
    md, junit = tmp_path / "gate.md", tmp_path / "junit.xml"
    proc = harness("gate", "--baseline", str(baseline), "--candidate", str(demo_run), "--markdown", str(md),
                   "--junit", str(junit), cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    head = proc.stdout.splitlines()[0]
    assert head == ("## ✅ harness gate: all 3 checks passed; 4 skipped (baseline tasks not run by the candidate: "
                    "scienceqa, mmbench, textvqa, vqav2_val)")  # fmt: skip
    assert "| ⏭ skipped | textvqa | accuracy |" in proc.stdout and "FAIL" not in proc.stdout
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("7", "0", "4")
    skipped = [c.get("classname") for c in suite.iter("testcase") if c.find("skipped") is not None]
    assert skipped == ["harness.gate.scienceqa", "harness.gate.mmbench", "harness.gate.textvqa",
                       "harness.gate.vqav2_val"]  # fmt: skip

    strict = harness("gate", "--baseline", str(baseline), "--candidate", str(demo_run), "--require-all-tasks")
    assert strict.returncode == 1
    assert strict.stdout.startswith("## ❌ harness gate: 4 of 7 checks failed")
    assert "**mmbench / circular**: task missing in the candidate" in strict.stdout
    named = harness("gate", "--baseline", str(baseline), "--candidate", str(demo_run), "--tasks", "gqa,textvqa")
    assert named.returncode == 1 and "**textvqa / accuracy**: task missing in the candidate" in named.stdout


def test_gate_fails_when_the_candidate_ran_none_of_the_baseline_tasks(runs: dict[str, Path], demo_run: Path,
                                                                      tmp_path: Path) -> None:
    baseline = tmp_path / "sqa.json"
    proc = harness("gate", "--write-baseline", str(runs["good"]), "--tasks", "scienceqa", "--output", str(baseline))
    assert proc.returncode == 0, proc.stderr
    proc = harness("gate", "--baseline", str(baseline), "--candidate", str(demo_run))
    assert proc.returncode == 1
    assert proc.stdout.startswith("## ❌ harness gate: the candidate ran none of the baseline's tasks")


def test_compare_and_gate_show_a_and_b_on_the_paired_samples(demo_run: Path, tmp_path: Path) -> None:
    """A --limit baseline (48 GQA samples) against the full demo run (120): the A and B columns are the
    values on the 48 paired samples, beside the paired difference; the whole-run values are listed apart."""
    from tests.helpers.paths import REPO

    baseline = str(REPO / "ci" / "baseline.json")
    proc = harness("compare", baseline, str(demo_run), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    gqa = next(t for t in json.loads(proc.stdout)["tasks"] if t["task"] == "gqa")
    (acc,) = gqa["metrics"]
    assert gqa["n_paired"] == 48 and gqa["only_b"] == 72 and gqa["n_b"] == 120
    assert acc["b"] == load_results(demo_run).tasks["gqa"].metrics["accuracy"].value  # whole run: 120 samples
    assert acc["diff"] == pytest.approx(acc["b_paired"] - acc["a_paired"])
    assert acc["b_paired"] != pytest.approx(acc["b"])  # the 48 paired samples score differently from all 120
    paired = f"| {acc['a_paired']:.2f} | {acc['b_paired']:.2f} | {acc['diff']:+.2f} |"
    whole = f"accuracy A {acc['a']:.2f}, B {acc['b']:.2f}"

    proc = harness("compare", baseline, str(demo_run))
    assert proc.returncode == 0, proc.stderr
    assert "| task | metric | A (paired) | B (paired) | Δ (B − A) |" in proc.stdout
    assert f"| gqa | accuracy {paired}" in proc.stdout
    assert f"- gqa: 48 paired samples; unpaired: 0 only in A, 72 only in B\n  - whole runs (48 samples in A, " \
           f"120 in B), not paired: {whole}" in proc.stdout
    assert f"| {acc['b']:.2f} |" not in proc.stdout.split("\n\n")[2]  # the whole-run value is not in the table

    junit = tmp_path / "junit.xml"
    proc = harness("gate", "--baseline", baseline, "--candidate", str(demo_run), "--junit", str(junit))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"| ✅ pass | gqa | accuracy {paired}" in proc.stdout
    assert f"whole runs (48 samples in baseline, 120 in candidate), not paired: accuracy baseline {acc['a']:.2f}, " \
           f"candidate {acc['b']:.2f}" in proc.stdout
    case = next(c for c in ET.parse(junit).getroot().iter("testcase") if c.get("classname") == "harness.gate.gqa")
    out = case.findtext("system-out") or ""
    assert f"baseline {acc['a_paired']:.2f}, candidate {acc['b_paired']:.2f} on the paired samples (whole runs: " \
           f"baseline {acc['a']:.2f}, candidate {acc['b']:.2f})" in out
