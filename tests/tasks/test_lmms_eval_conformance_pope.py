"""``harness score pope --protocol lmms-eval`` against lmms-eval 0.7.3's own ``pope`` task on the same answers.

The items exist twice: as documents in the lmms-lab/POPE schema that lmms-eval reads, and as our files made
from those documents (with a tiny image each, written as a parquet copy) by the task's own ``prepare``.
Crafted answers are scored by our CLI and by lmms-eval's YAML task (``tests/helpers/lmms_reference.py``, in
the lmms-eval venv, with the command line's default ``--reasoning_tags``); expected values only ever come from
running lmms-eval's code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from bench.lmms_eval_env import ensure_venv
from harness.data.readers import read_jsonl
from tests.helpers.lmms_reference import lmms_reference
from tests.helpers.paths import REPO
from tests.tasks.test_lmms_eval_conformance import image_cell, prepare, tagged, write_answers, write_parquet

pytestmark = pytest.mark.slow

TOL = 1e-9
SPLITS = ("adversarial", "popular", "random")
RESPONSES = ["Yes", "yes", "No", "no.", " no ", "YES", "No, there is not.", "yes\n", "", "maybe", "y", "Yes.",
             "There is a dog.", "no", "nope", "No", "yes", *tagged("Yes"), *tagged("no")]  # fmt: skip
METRICS = {"f1": "pope_f1_score", "accuracy": "pope_accuracy", "precision": "pope_precision",
           "recall": "pope_recall", "yes_ratio": "pope_yes_ratio"}  # fmt: skip


def pope_docs() -> list[dict[str, Any]]:
    docs = []
    for n in range(len(RESPONSES)):
        split = SPLITS[n % 3]
        docs.append({"id": str(n), "question_id": str(n // 3 + 1), "question": f" Is there a thing {n} in the image? ",
                     "answer": "yes" if n % 4 in (0, 3) else "no", "image_source": f"COCO_val2014_{n // 2:012d}",
                     "category": split})  # fmt: skip
    return docs


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("pope")
    docs = pope_docs()
    # the copy is ordered by split, as the label files are; the documents follow the same order
    docs.sort(key=lambda d: SPLITS.index(d["category"]))
    write_parquet(tmp / "src/data/test-00000-of-00001.parquet", [{**d, "image": image_cell()} for d in docs])
    root = prepare("pope", tmp / "src", tmp / "root")
    questions = list(read_jsonl(root / "pope/llava_pope_test.jsonl"))
    answers = write_answers(tmp / "answers.jsonl", [{"question_id": q["question_id"], "text": r}
                                                    for q, r in zip(questions, RESPONSES)])  # fmt: skip
    cmd = [sys.executable, "-m", "harness", "score", "pope", "--answers", str(answers), "--data-root", str(root),
           "--protocol", "lmms-eval", "--json", "--output-dir", str(tmp / "out")]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr
    (log,) = (tmp / "out").glob("*/samples/pope.jsonl")
    records = {str(r["id"]): r for r in read_jsonl(log)}
    try:
        python = ensure_venv(log=lambda line: print(line, file=sys.stderr))
    except RuntimeError as exc:
        pytest.fail(f"could not build the lmms-eval venv: {exc}")
    spec = {"task_yaml": "pope/pope.yaml", "docs": docs, "responses": RESPONSES, "reasoning_tags": "default"}
    reference = lmms_reference(spec, python)
    ids = [str(q["question_id"]) for q in questions]
    return json.loads(proc.stdout), {"records": records, "ids": ids}, reference


def test_metrics_match_lmms_eval(outcome: tuple[dict[str, Any], dict[str, Any], dict[str, Any]]) -> None:
    ours, _, ref = outcome
    for metric, lmms_metric in METRICS.items():
        assert ours["scores"][metric] == pytest.approx(100 * ref["metrics"][lmms_metric], abs=TOL), metric


def test_per_sample_scores_match_lmms_eval(outcome: tuple[dict[str, Any], dict[str, Any], dict[str, Any]]) -> None:
    _, side, ref = outcome
    expected = [float(doc["pope_accuracy"]["score"]) for doc in ref["per_doc"]]
    got = [side["records"][sid]["score"] for sid in side["ids"]]
    assert got == expected
