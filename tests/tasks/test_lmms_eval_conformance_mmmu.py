"""MMMU under ``--protocol lmms-eval`` against lmms-eval 0.7.3's own ``mmmu_val`` code.

The documents are in the schema of lmms-eval's dataset (``lmms-lab-encoder/MMMU``); our data root is
made from them by ``data prepare`` (lmms-lab parquet layout), the answers scored with ``harness score
--protocol lmms-eval``, and lmms-eval's ``mmmu_process_results`` and ``mmmu_aggregate_results`` run in
its venv (``tests/helpers/lmms_reference.py``). Every answer here names an option for lmms-eval's
parser: its random fallback draws from the unseeded global generator of that process, which no test
can reproduce.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from bench.lmms_eval_env import ensure_venv
from harness.data.readers import read_jsonl
from tests.helpers.lmms_reference import lmms_reference
from tests.helpers.paths import REPO

pytestmark = pytest.mark.slow

OPTIONS = "['cat', 'red dog', '1,000', 'Not exist']"
# (id, question_type, options, answer (the dataset's string), response)
DOCS: list[tuple[str, str, str, str, str]] = [
    ("validation_Accounting_1", "multiple-choice", OPTIONS, "A", "A"),
    ("validation_Accounting_2", "multiple-choice", OPTIONS, "B", "(B)"),
    ("validation_Accounting_3", "multiple-choice", OPTIONS, "B", "B."),
    ("validation_Art_1", "multiple-choice", OPTIONS, "C", "I choose C"),
    ("validation_Art_2", "multiple-choice", OPTIONS, "D", "Answer: D."),
    ("validation_Art_3", "multiple-choice", OPTIONS, "C", "It is (A) or maybe (C)"),
    ("validation_Math_1", "multiple-choice", OPTIONS, "A", "the cat is the one on the left side"),
    ("validation_Math_2", "multiple-choice", OPTIONS, "A", "BA is it"),  # "A " ends a word: A
    ("validation_Math_3", "multiple-choice", OPTIONS, "B", "B and C and D"),
    ("validation_Math_4", "multiple-choice", "['1', '2', '3']", "C", "C:"),  # the ":" is stripped: "C "
    ("validation_Sociology_1", "open", "[]", "3.5", "3.5"),
    ("validation_Sociology_2", "open", "[]", "1000", "The answer is 1,000"),
    ("validation_Sociology_3", "open", "[]", "cat", "It is a Cat."),
    ("validation_Sociology_4", "open", "[]", "12.97", "so 12.97 g"),
    ("validation_Pharmacy_1", "open", "[]", "Transformation", "hormone"),
    ("validation_Pharmacy_2", "open", "[]", "['24/7', '3.429']", "3.429"),  # a stringified list stays one string
    ("validation_Pharmacy_3", "open", "[]", "x", "x"),
]


def png() -> dict[str, Any]:
    buffer = io.BytesIO()
    Image.new("RGB", (2, 2), (30, 120, 200)).save(buffer, format="PNG")
    return {"bytes": buffer.getvalue(), "path": None}


def doc(sid: str, qtype: str, options: str, answer: str) -> dict[str, Any]:
    return {"id": sid, "question": f"What is shown in <image 1>? ({sid})", "options": options, "explanation": "",
            "img_type": "['Diagrams']", "answer": answer, "topic_difficulty": "Easy", "question_type": qtype,
            "subfield": "Demo"}  # fmt: skip


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("mmmu-lmms")
    docs = [doc(sid, q, o, a) for sid, q, o, a, _ in DOCS]
    rows = [{**d, "image_1": png(), **{f"image_{n}": None for n in range(2, 8)}} for d in docs]
    parquet = tmp / "src/data/validation-00000-of-00001.parquet"
    parquet.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), parquet)
    from harness.registry import get_task

    get_task("mmmu").prepare(tmp / "src", tmp / "root")
    answers = tmp / "answers.jsonl"
    answers.write_text("".join(json.dumps({"question_id": sid, "text": r}) + "\n" for sid, _, _, _, r in DOCS))
    cmd = [sys.executable, "-m", "harness", "score", "mmmu", "--answers", str(answers), "--data-root",
           str(tmp / "root"), "--protocol", "lmms-eval", "--json", "--output-dir", str(tmp / "out")]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    (log,) = (tmp / "out").glob("*/samples/mmmu.jsonl")
    records = {str(r["id"]): r for r in read_jsonl(log)}
    python = ensure_venv(log=lambda line: print(line, file=sys.stderr))
    spec = {"task_yaml": "mmmu/mmmu_val.yaml", "docs": docs, "responses": [r for *_, r in DOCS],
            "reasoning_tags": "default"}  # fmt: skip
    return json.loads(proc.stdout), records, lmms_reference(spec, python)


def comparable(parsed: Any) -> Any:
    return parsed if isinstance(parsed, str) else sorted(repr(p) for p in parsed)


def test_accuracy_matches_lmms_eval(outcome: tuple[dict[str, Any], dict[str, Any], dict[str, Any]]) -> None:
    ours, _, ref = outcome
    assert round(ours["scores"]["accuracy"] / 100, 5) == ref["metrics"]["mmmu_acc"]


def test_parsed_answers_match_lmms_eval(outcome: tuple[dict[str, Any], dict[str, Any], dict[str, Any]]) -> None:
    _, records, ref = outcome
    problems = []
    for (sid, *_), values in zip(DOCS, ref["per_doc"]):
        (theirs,) = values["mmmu_acc"]["parsed_pred"]
        mine = records[sid]["parsed"]
        if comparable(mine) != comparable(theirs):
            problems.append(f"{sid}: ours {mine!r}, lmms-eval {theirs!r}")
    assert not problems, "\n".join(problems)
    assert not any(r["parse_failed"] for r in records.values())
