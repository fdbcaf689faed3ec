"""POPE from the lmms-lab parquet copy, in LLaVA's ``playground/data/eval/pope`` layout.

Writes under the data root:

- ``pope/coco/coco_pope_<split>.json``: the label files, one JSON object per line (``question_id``,
  ``image``, ``text``, ``label``), each split's rows in the order of the copy;
- ``pope/llava_pope_test.jsonl``: LLaVA's question file: ``question_id`` numbered 1, 2, ... over the
  whole copy (eval_pope.py looks questions up by id, so ids must differ across the splits), ``image``,
  ``text`` = the question + "\\nAnswer the question using a single word or phrase.", ``category`` = the
  split; a split's questions in the same order as its label lines (the scorer pairs them by position);
- ``pope/val2014/<image_source>.jpg``: the images, once each, bytes as stored.

Schema of the copy, and where each fact comes from: config ``default``, split ``test``, files
``data/test-*.parquet``; columns ``question_id`` (string), ``question``, ``answer`` ("yes"/"no"),
``image_source`` (the COCO file stem), ``image`` (Image), ``category`` (adversarial / popular /
random): the dataset card and lmms-eval ``tasks/pope/pope.yaml`` and ``utils.py`` (reads question,
answer, category, question_id).

Limitation (recorded in the sources file): the copy holds 3,000 questions per split, LLaVA's files
8,910 (2,910 in random); the question ids of LLaVA's file are not in the copy, so answers made on
LLaVA's question file (for example published predictions) do not join these files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.data.prepare import image_bytes, iter_rows, note, write_file, write_jsonl
from harness.errors import DataError
from tasks.common.prepare import ParquetCopy
from tasks.common.question_file import question_line
from tasks.common.requests import LLAVA_SUFFIX
from tasks.pope.scorer import SPLITS

HF_DATASET = "lmms-lab/POPE"
TEST = ParquetCopy("pope", "data/test-*.parquet", "POPE test", 8910, "LLaVA question file")
HF_PATTERNS = {"pope": (TEST.pattern,)}
COLUMNS = ("question_id", "question", "answer", "image_source", "image", "category")

LLAVA_QUESTIONS = "pope/llava_pope_test.jsonl"
LABELS_DIR = "pope/coco"
IMAGES_DIR = "pope/val2014"


def label_id(value: Any) -> Any:
    """The copy's question id as the label files hold it: a number where it is one."""
    text = str(value)
    return int(text) if text.isdigit() else text


def prepare_root(source: Path, root: Path) -> None:
    """Write POPE (label files, LLaVA question file, images) under ``root``."""
    source, root = Path(source), Path(root)
    labels: dict[str, list[dict[str, Any]]] = {split: [] for split in SPLITS}
    questions: list[dict[str, Any]] = []
    images: set[str] = set()
    for where, row in iter_rows(TEST.files(source), "pope questions", COLUMNS):
        split, answer = str(row["category"]), str(row["answer"]).strip().lower()
        if split not in labels:
            raise DataError(f"{where}: category {split!r} is not one of {', '.join(SPLITS)}")
        if answer not in ("yes", "no"):
            raise DataError(f"{where}: answer {row['answer']!r} is not yes or no")
        image = f"{row['image_source']}.jpg"
        question = str(row["question"]).strip()
        labels[split].append({"question_id": label_id(row["question_id"]), "image": image, "text": question,
                              "label": answer})  # fmt: skip
        questions.append(question_line(len(questions) + 1, image, question + LLAVA_SUFFIX, split))
        if image not in images:
            write_file(root / IMAGES_DIR / image, image_bytes(row["image"], where))
            images.add(image)
    TEST.check_count(len(questions))
    for split, rows in labels.items():
        if not rows:
            note(f"pope: no {split} questions in the copy")
        write_jsonl(root / f"{LABELS_DIR}/coco_pope_{split}.json", rows)
    write_jsonl(root / LLAVA_QUESTIONS, questions)
    note("pope: question ids of LLaVA's question file are numbered 1.. over the copy; LLaVA's own ids differ")
