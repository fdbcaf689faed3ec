"""SEED-Bench (image part) from the lmms-lab parquet copy, in LLaVA's ``playground/data/eval/seed_bench`` layout.

Writes under the data root:

- ``seed_bench/SEED-Bench.json``: ``{"questions": [...], "question_type": {name: id}}`` with the copy's
  image questions (fields ``answer``, ``choice_a``..``choice_d``, ``data_id``, ``data_type``,
  ``question``, ``question_id``, ``question_type_id``) in the copy's order, and the twelve question
  type names of SEED-Bench's README;
- ``seed_bench/llava-seed-bench.jsonl``: LLaVA's question file: ``question_id`` as a number, ``image``
  ``SEED-Bench-image/<data_id>``, ``text`` = question, the options ``A. ..`` to ``D. ..`` and "Answer
  with the option's letter from the given choices directly.", each on its own line, ``category`` the
  question type name;
- ``seed_bench/SEED-Bench-image/<data_id>``: the images, bytes as stored.

Schema of the copy, and where each fact comes from: split ``test``, files ``data/test-*.parquet``;
columns ``answer``, ``choice_a``..``choice_d``, ``data_id``, ``data_type`` ("image" / "video"),
``question``, ``question_id`` (string), ``question_type_id`` and ``image`` (a list of Image values,
one for an image question): lmms-eval ``tasks/seedbench/seedbench.yaml`` and ``utils.py``.

Limitations (recorded in the sources file): video questions are left out (this task is the image
part; the official SEED-Bench.json holds them too, which only the converter's upload file needs);
the question type names are not in the copy and are written from SEED-Bench's README.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.data.prepare import image_bytes, iter_rows, note, write_file, write_jsonl
from harness.errors import DataError
from tasks.common.prepare import ParquetCopy
from tasks.common.question_file import question_line
from tasks.common.requests import LETTER_ANSWER

HF_DATASET = "lmms-lab/SEED-Bench"
TEST = ParquetCopy("seed_bench", "data/test-*.parquet", "SEED-Bench test", 14233, "image part", "image questions")
HF_PATTERNS = {"seed_bench": (TEST.pattern,)}
FIELDS = ("answer", "choice_a", "choice_b", "choice_c", "choice_d", "data_id", "data_type", "question",
          "question_id", "question_type_id")  # fmt: skip
COLUMNS = (*FIELDS, "image")
ANNOTATIONS = "seed_bench/SEED-Bench.json"
LLAVA_QUESTIONS = "seed_bench/llava-seed-bench.jsonl"
IMAGES_DIR = "seed_bench/SEED-Bench-image"
# SEED-Bench.json's "question_type" (SEED-Bench README, AILab-CVC/SEED-Bench).
QUESTION_TYPES = {
    "Scene Understanding": 1,
    "Instance Identity": 2,
    "Instance Location": 3,
    "Instance Attributes": 4,
    "Instances Counting": 5,
    "Spatial Relation": 6,
    "Instance Interaction": 7,
    "Visual Reasoning": 8,
    "Text Understanding": 9,
    "Action Recognition": 10,
    "Action Prediction": 11,
    "Procedure Understanding": 12,
}
TYPE_NAMES = {type_id: name for name, type_id in QUESTION_TYPES.items()}


def llava_text(question: dict[str, Any]) -> str:
    """The text of LLaVA's question file for one annotation."""
    options = "".join(f"\n{letter}. {question[f'choice_{letter.lower()}']}" for letter in "ABCD")
    return f"{question['question']}{options}\n{LETTER_ANSWER}"


def prepare_root(source: Path, root: Path) -> None:
    """Write SEED-Bench's image part (annotations, LLaVA question file, images) under ``root``."""
    source, root = Path(source), Path(root)
    questions: list[dict[str, Any]] = []
    llava: list[dict[str, Any]] = []
    n_video = 0
    for where, row in iter_rows(TEST.files(source), "seed_bench questions", COLUMNS):
        if str(row["data_type"]) != "image":
            n_video += 1
            continue
        question = {name: row[name] for name in FIELDS}
        question["question_id"] = str(question["question_id"])
        question["question_type_id"] = int(question["question_type_id"])
        if question["answer"] not in ("A", "B", "C", "D"):
            raise DataError(f"{where}: answer {question['answer']!r} is not a letter A-D")
        if question["question_type_id"] not in TYPE_NAMES:
            raise DataError(f"{where}: question_type_id {question['question_type_id']} is not a SEED-Bench type")
        images = row["image"] if isinstance(row["image"], list) else [row["image"]]
        if len(images) != 1:
            raise DataError(f"{where}: an image question with {len(images)} images")
        write_file(root / IMAGES_DIR / str(question["data_id"]), image_bytes(images[0], where))
        questions.append(question)
        qid = int(question["question_id"]) if question["question_id"].isdigit() else question["question_id"]
        llava.append(question_line(qid, f"SEED-Bench-image/{question['data_id']}", llava_text(question),
                                   TYPE_NAMES[question["question_type_id"]]))  # fmt: skip
    TEST.check_count(len(questions))
    if n_video:
        note(f"seed_bench: {n_video} video questions left out (the task scores the image part)")
    note("seed_bench: question type names written from SEED-Bench's README (the copy has only the ids)")
    write_file(root / ANNOTATIONS, json.dumps({"questions": questions, "question_type": QUESTION_TYPES}))
    write_jsonl(root / LLAVA_QUESTIONS, llava)
