"""``harness score vizwiz_val --protocol lmms-eval`` against lmms-eval 0.7.3's ``vizwiz_vqa_val`` task code.

The same questions exist as documents in lmms-lab/VizWiz-VQA's schema (``question_id``, ``question``,
``answers`` as plain strings, ``category``) and as our ``vizwiz/val.json``, made from those documents by
the task's own ``prepare`` (a parquet copy with a tiny image each). Crafted answers are scored by our CLI
and by lmms-eval's YAML task (``tests/helpers/lmms_reference.py``); every per-document score and the
headline must agree, and our lmms-eval prompt must equal ``vizwiz_vqa_doc_to_text`` with the task's
``post_prompt``. Expected values only ever come from running lmms-eval's code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import tests.tasks.test_lmms_eval_conformance as base
from bench.lmms_eval_env import ensure_venv
from harness.protocol import load_protocol
from tasks.vizwiz import VizWizValTask
from tests.helpers.lmms_reference import lmms_references

pytestmark = pytest.mark.slow

SETS: list[tuple[str, str, list[str], list[str]]] = [
    # (question, category, answers, responses)
    ("is this a can of soda?", "yes/no", ["yes"] * 10, ["yes", "Yes.", " YES\n", "no", "", *base.tagged("Yes")]),
    ("how many coins are there?", "number", ["2"] * 2 + ["two"] * 6 + ["3", "2"], ["2", "Two.", "two coins", "3"]),
    ("what is this?", "other", ["red white"] * 4 + ["red, white"] * 4 + ["white", "red"],
     ["Red, White", "red white", "red/white", "red and white"]),
    ("what does the label say?", "unanswerable", ["unanswerable"] * 8 + ["blurry"] * 2,
     ["Unanswerable", "unanswerable.", "blurry", "I can't tell", "The image is blurry."]),
    ("what is the price?", "number", ["1000"] * 3 + ["1,000"] * 7, ["1,000", "1000", "one thousand", "$1,000"]),
    ("what brand is this?", "other", ["coca cola"] * 5 + ["Coca-Cola"] * 5, ["Coca-Cola", "coca cola", "coke"]),
    ("do you know?", "other", ["dont know"] * 6 + ["don't know"] * 4, ["dont know", "Don't know.", "idk"]),
    ("what is it?", "other", ["dog"] * 9, ["dog", "a dog", "the dog?"]),  # nine answers: lmms-eval takes any count
]  # fmt: skip


def build(tmp: Path) -> base.Case:
    docs: list[dict[str, Any]] = []
    responses: list[str] = []
    for question, category, answers, replies in SETS:
        for reply in replies:
            docs.append({"question_id": f"VizWiz_val_{len(docs):08d}", "question": question, "answers": answers,
                         "category": category})  # fmt: skip
            responses.append(reply)
    base.write_parquet(tmp / "src/data/val-00000-of-00001.parquet", [{**d, "image": base.image_cell()} for d in docs])
    root = base.prepare("vizwiz_val", tmp / "src", tmp / "root")
    lines = [{"question_id": d["question_id"], "text": r} for d, r in zip(docs, responses)]
    return base.Case("vizwiz_val", "vizwiz_val", "vizwiz_vqa/vizwiz_vqa_val.yaml", docs, responses,
                     [d["question_id"] for d in docs], root, base.write_answers(tmp / "answers.jsonl", lines),
                     {"overall": ("exact_match", 100.0)}, base.EXACT_MATCH)  # fmt: skip


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> tuple[base.Case, dict[str, Any], dict[str, Any], Any]:
    case = build(tmp_path_factory.mktemp("vizwiz"))
    python = ensure_venv(log=lambda line: print(line, file=sys.stderr))
    (ref,) = lmms_references([case.spec()], python)
    assert "error" not in ref, ref.get("error")
    ours, records = base.run_ours(case, tmp_path_factory.mktemp("vizwiz-out"))
    return case, ours, ref, records


def test_headline_matches_lmms_eval(outcome: Any) -> None:
    _, ours, ref, _ = outcome
    assert ours["scores"]["overall"] == pytest.approx(ref["metrics"]["exact_match"] * 100.0, abs=base.TOL)


def test_per_document_scores_match_lmms_eval(outcome: Any) -> None:
    case, _, ref, records = outcome
    problems = list(base.sample_mismatches(case, ref, records))
    assert not problems, "\n".join(problems)


def test_prompt_equals_doc_to_text(tmp_path: Path) -> None:
    questions = ["what is this?", "Is this a CAN of Coca-Cola?", "  read the label  ", "WHAT color is it"]
    python = ensure_venv(log=lambda line: print(line, file=sys.stderr))
    script = (
        "import json, sys, yaml\n"
        "from lmms_eval.tasks.vizwiz_vqa.utils import vizwiz_vqa_doc_to_text\n"
        "import lmms_eval, pathlib\n"
        "cfg = pathlib.Path(lmms_eval.__file__).parent / 'tasks/vizwiz_vqa/_default_template_vqa_yaml'\n"
        "kw = yaml.safe_load(''.join(l for l in cfg.open() if '!function' not in l))\n"
        "kw = kw['lmms_eval_specific_kwargs']['default']\n"
        "qs = json.loads(sys.argv[1])\n"
        "print(json.dumps([vizwiz_vqa_doc_to_text({'question': q}, kw) for q in qs]))\n"
    )
    proc = subprocess.run([str(python), "-c", script, json.dumps(questions)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = json.loads(proc.stdout.strip().splitlines()[-1])
    items = [{"image": f"VizWiz_val_{i:08d}.jpg", "question": q, "answers": [{"answer": "x"}] * 10,
              "answer_type": "other"} for i, q in enumerate(questions)]  # fmt: skip
    (tmp_path / "vizwiz").mkdir()
    (tmp_path / "vizwiz/val.json").write_text(json.dumps(items))
    task = VizWizValTask()
    settings = load_protocol("lmms-eval").settings_for(task)
    got = [task.build_request(s, settings).prompt.removeprefix("<image>\n") for s in task.load(tmp_path)]
    assert got == expected
