"""``harness score seed_bench --protocol lmms-eval`` against lmms-eval 0.7.3's own ``seedbench`` task.

The image questions exist twice: as documents in the lmms-lab/SEED-Bench schema that lmms-eval reads, and as
our files made from them (with a tiny image each, written as a parquet copy) by the task's own ``prepare``.
Crafted answers are scored by our CLI and by lmms-eval's YAML task (``tests/helpers/lmms_reference.py``, in
the lmms-eval venv, with the command line's default ``--reasoning_tags``); its ``seed_image`` and per-document
results are the expected values.
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
RESPONSES = ["{L}", "{l}", "{L}.", " {L} ", "{L}. four", "The answer is {L}", "E", "", "{L}\n", "Apple",
             "({L})", "{L}) one", *tagged("{L}")]  # fmt: skip
LETTERS = "ABCD"


def seed_docs() -> tuple[list[dict[str, Any]], list[str]]:
    docs, responses = [], []
    for n, template in enumerate(RESPONSES):
        letter = LETTERS[n % 4]
        docs.append({"answer": letter, "choice_a": "one", "choice_b": "two", "choice_c": "three", "choice_d": "four",
                     "data_id": f"{n}_{n}.jpg", "data_type": "image", "question": f"How many things in picture {n}?",
                     "question_id": str(5000 + n), "question_type_id": n % 9 + 1})  # fmt: skip
        responses.append(template.format(L=letter, l=letter.lower()))
    return docs, responses


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]],
                                                                 dict[str, Any]]:  # fmt: skip
    tmp = tmp_path_factory.mktemp("seed")
    docs, responses = seed_docs()
    write_parquet(tmp / "src/data/test-00000-of-00001.parquet", [{**d, "image": [image_cell()]} for d in docs])
    root = prepare("seed_bench", tmp / "src", tmp / "root")
    answers = write_answers(tmp / "answers.jsonl", [{"question_id": int(d["question_id"]), "text": r}
                                                    for d, r in zip(docs, responses)])  # fmt: skip
    cmd = [sys.executable, "-m", "harness", "score", "seed_bench", "--answers", str(answers), "--data-root",
           str(root), "--protocol", "lmms-eval", "--json", "--output-dir", str(tmp / "out")]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr
    (log,) = (tmp / "out").glob("*/samples/seed_bench.jsonl")
    records = {str(r["id"]): r for r in read_jsonl(log)}
    try:
        python = ensure_venv(log=lambda line: print(line, file=sys.stderr))
    except RuntimeError as exc:
        pytest.fail(f"could not build the lmms-eval venv: {exc}")
    spec = {"task_yaml": "seedbench/seedbench.yaml", "docs": docs, "responses": responses, "reasoning_tags": "default"}
    return json.loads(proc.stdout), records, docs, lmms_reference(spec, python)


def test_accuracy_matches_seed_image(outcome: tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]],
                                                    dict[str, Any]]) -> None:  # fmt: skip
    ours, _, _, ref = outcome
    assert ours["scores"]["accuracy"] == pytest.approx(100 * ref["metrics"]["seed_image"], abs=TOL)
    assert ref["metrics"]["seed_image"] == ref["metrics"]["seed_all"]


def test_per_sample_scores_match_lmms_eval(outcome: tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]],
                                                          dict[str, Any]]) -> None:  # fmt: skip
    _, records, docs, ref = outcome
    expected = []
    for values in ref["per_doc"]:
        item = values["seed_image"]
        expected.append(1.0 if item["pred"].lower().strip() == item["answer"].lower().strip() else 0.0)
    got = [records[d["question_id"]]["score"] for d in docs]
    assert got == expected
    assert 0 < sum(expected) < len(expected)
