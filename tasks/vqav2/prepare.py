"""VQA-v2 from the lmms-lab parquet copy, in LLaVA's ``playground/data/eval/vqav2`` layout.

One function serves both tasks; it writes what the splits present under the source give (or the
``splits`` asked for):

- ``validation`` (task ``vqav2_val``): ``vqav2/v2_OpenEnded_mscoco_val2014_questions.json`` and
  ``vqav2/v2_mscoco_val2014_annotations.json`` in the official schema (questions
  ``{image_id, question, question_id}``; annotations ``{question_type, multiple_choice_answer,
  answers: 10 x {answer, answer_confidence, answer_id}, image_id, answer_type, question_id}``), and
  ``vqav2/val2014/COCO_val2014_<12-digit image id>.jpg``;
- ``testdev`` (task ``vqav2``): LLaVA's ``vqav2/llava_vqav2_mscoco_test-dev2015.jsonl``
  (``question_id`` int, ``image`` ``COCO_test2015_<12-digit id>.jpg``, ``text`` = question + the
  short-answer suffix, ``category`` "default") and ``vqav2/test2015/`` with the test-dev images;
- ``test`` (task ``vqav2``): LLaVA's ``vqav2/llava_vqav2_mscoco_test2015.jsonl`` (every test2015
  question, same fields), which the submission file covers. Only the question columns are read.

Schema of the copy, and where each fact comes from:

- one config, splits ``validation`` (214,354 rows), ``testdev`` (107,394), ``test`` (447,793), files
  ``data/<split>-*.parquet``; columns ``question_type``, ``multiple_choice_answer``, ``answers`` (list
  of ``{answer, answer_confidence, answer_id}``), ``image_id`` (int), ``answer_type``,
  ``question_id`` (int), ``question``, ``image`` (Image): the dataset card's ``dataset_info`` and
  ``configs``; lmms-eval ``tasks/vqav2/_default_template_vqav2_yaml``, ``vqav2_val.yaml`` (split
  ``validation``), ``vqav2_test.yaml`` (split ``test``) and ``utils.py`` (reads question,
  answers[].answer, question_id).

Limitations: the ``info`` and ``license`` blocks of the two val files are not the official texts
(nothing reads them); question and image order is the copy's. The ``test`` split is needed only for
the test2015 question list, but a download takes whole parquet files: about 71 GB, images included.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from harness.data.prepare import image_bytes, iter_rows, matches, note, write_file, write_jsonl
from harness.errors import DataError
from tasks.common.prepare import ParquetCopy
from tasks.common.question_file import question_line
from tasks.common.requests import LLAVA_SUFFIX

HF_DATASET = "lmms-lab/VQAv2"
SPLITS = {
    split: ParquetCopy("vqav2", f"data/{split}-*.parquet", f"VQAv2 {split}", rows, "split", noun=f"{split} questions")
    for split, rows in (("validation", 214_354), ("testdev", 107_394), ("test", 447_793))
}
SPLIT_PATTERNS = {split: copy.pattern for split, copy in SPLITS.items()}
HF_PATTERNS = {
    "vqav2": (SPLIT_PATTERNS["testdev"], SPLIT_PATTERNS["test"]),
    "vqav2_val": (SPLIT_PATTERNS["validation"],),
}

VAL_QUESTIONS = "vqav2/v2_OpenEnded_mscoco_val2014_questions.json"
VAL_ANNOTATIONS = "vqav2/v2_mscoco_val2014_annotations.json"
VAL_IMAGES = "vqav2/val2014"
TEST_DEV_QUESTIONS = "vqav2/llava_vqav2_mscoco_test-dev2015.jsonl"
TEST_QUESTIONS = "vqav2/llava_vqav2_mscoco_test2015.jsonl"
TEST_IMAGES = "vqav2/test2015"
_INFO = {
    "description": "VQA v2 val2014, rebuilt by 'harness data prepare' from the lmms-lab/VQAv2 parquet copy",
    "version": "2.0",
    "url": "https://visualqa.org",
}
_LICENSE = {"name": "Creative Commons Attribution 4.0 International License",
            "url": "http://creativecommons.org/licenses/by/4.0/"}
ANNOTATION_FIELDS = ("question_type", "multiple_choice_answer", "answers", "image_id", "answer_type", "question_id")
QUESTION_COLUMNS = ("question_id", "image_id", "question")


def val_image_name(image_id: int) -> str:
    return f"COCO_val2014_{int(image_id):012d}.jpg"


def test_image_name(image_id: int) -> str:
    return f"COCO_test2015_{int(image_id):012d}.jpg"


def llava_record(row: dict[str, Any]) -> dict[str, Any]:
    """A line of LLaVA's test question files."""
    return question_line(int(row["question_id"]), test_image_name(row["image_id"]), f"{row['question']}{LLAVA_SUFFIX}")


def _answers(value: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(a, dict) and "answer" in a for a in value):
        raise DataError(f"{where}: 'answers' is not a list of {{answer, answer_confidence, answer_id}}")
    return [{"answer": a["answer"], "answer_confidence": a.get("answer_confidence"), "answer_id": a.get("answer_id")}
            for a in value]


def _write_images(rows: Iterable[tuple[str, dict[str, Any]]], folder: Path, name: Any, written: set[int]) -> None:
    """Each image of the rows once, as ``name(image_id)``."""
    for where, row in rows:
        image_id = int(row["image_id"])
        if image_id not in written:
            write_file(folder / name(image_id), image_bytes(row["image"], where))
            written.add(image_id)


def prepare_validation(paths: Sequence[Path], root: Path) -> None:
    """The official val2014 questions and annotations, and the val2014 images."""
    questions: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    written: set[int] = set()
    columns = (*ANNOTATION_FIELDS, "question", "image")
    for where, row in iter_rows(paths, "vqav2 validation", columns):
        questions.append({"image_id": int(row["image_id"]), "question": row["question"],
                          "question_id": int(row["question_id"])})
        item = {name: row[name] for name in ANNOTATION_FIELDS}
        item["answers"] = _answers(row["answers"], where)
        annotations.append(item)
        _write_images([(where, row)], root / VAL_IMAGES, val_image_name, written)
    SPLITS["validation"].check_count(len(questions))
    common = {"info": _INFO, "license": _LICENSE, "data_type": "mscoco", "data_subtype": "val2014"}
    write_file(root / VAL_QUESTIONS, json.dumps({**common, "task_type": "Open-Ended", "questions": questions}))
    write_file(root / VAL_ANNOTATIONS, json.dumps({**common, "annotations": annotations}))
    note("vqav2_val: the 'info' and 'license' blocks are the harness's, not the official texts")


def prepare_testdev(paths: Sequence[Path], root: Path) -> None:
    """LLaVA's test-dev question file and the test-dev images."""
    records: list[dict[str, Any]] = []
    written: set[int] = set()
    for where, row in iter_rows(paths, "vqav2 test-dev", (*QUESTION_COLUMNS, "image")):
        records.append(llava_record(row))
        _write_images([(where, row)], root / TEST_IMAGES, test_image_name, written)
    SPLITS["testdev"].check_count(len(records))
    write_jsonl(root / TEST_DEV_QUESTIONS, records)


def prepare_test(paths: Sequence[Path], root: Path) -> None:
    """LLaVA's test2015 question file (question columns only; no images)."""
    records = [llava_record(row) for _, row in iter_rows(paths, "vqav2 test2015 questions", QUESTION_COLUMNS)]
    SPLITS["test"].check_count(len(records))
    write_jsonl(root / TEST_QUESTIONS, records)


WRITERS = {"validation": prepare_validation, "testdev": prepare_testdev, "test": prepare_test}


def present_splits(source: Path) -> list[str]:
    """The splits with parquet files under ``source``."""
    files = [p.relative_to(source).as_posix() for p in source.rglob("*.parquet")]
    return [s for s, pattern in SPLIT_PATTERNS.items() if any(matches(f, (pattern,)) for f in files)]


def prepare_root(source: Path, root: Path, splits: Sequence[str] | None = None) -> None:
    """Write the VQA-v2 files of ``splits`` (default: every split present under ``source``) under ``root``."""
    source, root = Path(source), Path(root)
    chosen = list(splits) if splits is not None else present_splits(source)
    unknown = [s for s in chosen if s not in WRITERS]
    if unknown:
        raise DataError(f"vqav2: unknown split(s) {', '.join(unknown)}; known: {', '.join(WRITERS)}")
    if not chosen:
        raise DataError(f"{source}: no VQAv2 parquet files (expected {', '.join(SPLIT_PATTERNS.values())})")
    for split in chosen:
        paths = SPLITS[split].files(source)
        WRITERS[split](paths, root)
