"""VizWiz VQA from the lmms-lab parquet copy, in LLaVA's ``playground/data/eval/vizwiz`` layout.

- ``val`` (task ``vizwiz_val``): ``vizwiz/val.json`` in VizWiz's schema (a JSON array of ``{image,
  question, answers: [{answer}], answer_type}``) and ``vizwiz/val/<image>``;
- ``test`` (task ``vizwiz``): ``vizwiz/test.json`` (``{image, question}``), LLaVA's
  ``vizwiz/llava_test.jsonl`` (``question_id`` = position, ``image``, question + the two answer
  lines, ``category`` "default") and ``vizwiz/test/<image>``.

Schema of the copy (``lmms-lab/VizWiz-VQA``), and where each fact comes from: one config, splits
``val`` (4,319 rows) and ``test`` (8,000), files ``data/<split>-*.parquet``; columns ``question_id``
(text: the image name without ``.jpg``, e.g. ``VizWiz_val_00000000``), ``image`` (Image), ``question``,
``answers`` (list of text), ``category`` (text): the dataset card's ``dataset_info``; lmms-eval
``tasks/vizwiz_vqa/utils.py`` (answers as plain strings, ``f"{question_id}.jpg"`` as the image name
of its submission).

Limitations: the copy has no ``answer_confidence`` and no ``answerable``; the answers are written
without confidence and ``answerable`` is left out (neither enters the accuracy). ``category`` is
written as ``answer_type``. LLaVA's ``question_id`` numbering of ``llava_test.jsonl`` is taken to be
the position in the test split, in the copy's order.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.data.prepare import image_bytes, iter_rows, matches, note, write_file, write_jsonl
from harness.errors import DataError
from tasks.common.prepare import ParquetCopy
from tasks.common.question_file import question_line
from tasks.vizwiz import VIZWIZ_SUFFIX

HF_DATASET = "lmms-lab/VizWiz-VQA"
SPLITS = {
    "val": ParquetCopy("vizwiz_val", "data/val-*.parquet", "VizWiz val", 4_319, "val.json"),
    "test": ParquetCopy("vizwiz", "data/test-*.parquet", "VizWiz test", 8_000, "test.json"),
}
HF_PATTERNS = {"vizwiz": (SPLITS["test"].pattern,), "vizwiz_val": (SPLITS["val"].pattern,)}
COLUMNS = ("question_id", "image", "question", "answers", "category")


def _image_name(row: dict[str, Any], where: str) -> str:
    qid = str(row.get("question_id") or "").strip()
    if not qid:
        raise DataError(f"{where}: no question_id (the image name)")
    return qid if qid.endswith(".jpg") else f"{qid}.jpg"


def _answers(value: Any, where: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise DataError(f"{where}: 'answers' is not a list")
    return [{"answer": a["answer"]} if isinstance(a, dict) else {"answer": str(a)} for a in value]


def prepare_val(paths: Sequence[Path], root: Path) -> None:
    """VizWiz's val.json and the val images."""
    items: list[dict[str, Any]] = []
    for where, row in iter_rows(paths, "vizwiz val", COLUMNS):
        name = _image_name(row, where)
        items.append({"image": name, "question": row["question"], "answers": _answers(row["answers"], where),
                      "answer_type": row.get("category")})  # fmt: skip
        write_file(root / "vizwiz/val" / name, image_bytes(row["image"], where))
    SPLITS["val"].check_count(len(items))
    write_file(root / "vizwiz/val.json", json.dumps(items))
    note("vizwiz_val: the copy has no answer_confidence or answerable; category written as answer_type")


def prepare_test(paths: Sequence[Path], root: Path) -> None:
    """VizWiz's test.json, LLaVA's llava_test.jsonl and the test images."""
    items: list[dict[str, Any]] = []
    for where, row in iter_rows(paths, "vizwiz test", ("question_id", "image", "question")):
        name = _image_name(row, where)
        items.append({"image": name, "question": row["question"]})
        write_file(root / "vizwiz/test" / name, image_bytes(row["image"], where))
    SPLITS["test"].check_count(len(items))
    write_file(root / "vizwiz/test.json", json.dumps(items))
    write_jsonl(
        root / "vizwiz/llava_test.jsonl",
        [question_line(i, x["image"], f"{x['question']}{VIZWIZ_SUFFIX}") for i, x in enumerate(items)],
    )
    note("vizwiz: llava_test.jsonl question ids are positions in the copy's test split")


WRITERS = {"val": prepare_val, "test": prepare_test}


def prepare_root(source: Path, root: Path, splits: Sequence[str] | None = None) -> None:
    """Write the VizWiz files of ``splits`` (default: every split present under ``source``) under ``root``."""
    source, root = Path(source), Path(root)
    if splits is None:
        files = [p.relative_to(source).as_posix() for p in source.rglob("*.parquet")]
        splits = [s for s, copy in SPLITS.items() if any(matches(f, (copy.pattern,)) for f in files)]
    if not splits:
        raise DataError(f"{source}: no VizWiz parquet files (expected data/val-*.parquet or data/test-*.parquet)")
    for split in splits:
        WRITERS[split](SPLITS[split].files(source), root)
