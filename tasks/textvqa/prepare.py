"""TextVQA val (v0.5.1) from the lmms-lab parquet copy, in LLaVA's ``playground/data/eval/textvqa`` layout.

Writes under the data root:

- ``textvqa/TextVQA_0.5.1_val.json``: the official annotation file, ``{"dataset_type": "val",
  "dataset_name": "textvqa", "dataset_version": "0.5.1", "data": [...]}``, each item with the
  official fields in the official order (``question``, ``image_id``, ``image_classes``,
  ``flickr_original_url``, ``flickr_300k_url``, ``image_width``, ``image_height``, ``answers``,
  ``question_tokens``, ``question_id``, ``set_name``), in the order of the copy;
- ``textvqa/llava_textvqa_val_v051_ocr.jsonl``: LLaVA's question file: ``question_id`` = the image id,
  ``image`` = ``<image_id>.jpg``, ``text`` = the question with its first letter upper-cased, a
  ``Reference OCR token: t1, t2, ...`` line (the copy's ``ocr_tokens``; the line stays, empty, for an
  image without tokens, as in LLaVA's file) and the short-answer suffix; ``category`` "default";
- ``textvqa/train_images/<image_id>.jpg``: each image once, bytes as stored.

Schema of the copy, and where each fact comes from:

- one config, split ``validation`` (5000 rows), files ``data/validation-*.parquet``; columns
  ``image_id`` (string), ``question_id`` (int), ``question``, ``question_tokens`` (list), ``image``
  (Image), ``image_width``, ``image_height``, ``flickr_original_url``, ``flickr_300k_url``,
  ``answers`` (list of 10 strings), ``image_classes`` (list), ``set_name``, ``ocr_tokens`` (list):
  the dataset card's ``dataset_info``; lmms-eval ``tasks/textvqa/textvqa_val.yaml`` (split) and
  ``utils.py`` (reads question, answers, ocr_tokens, question_id).

Limitations: LLaVA built its prompts from Rosetta OCR v0.2 tokens (LLaVA issue #976); the copy's
``ocr_tokens`` are taken to be those tokens (not checked here against LLaVA's eval.zip file). LLaVA's
question text is the annotation's question with the first letter upper-cased (the annotation questions
are lower-case, so this equals ``str.capitalize()`` there). Optional metadata columns missing from the
copy are filled (null or empty list) and recorded.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.data.prepare import image_bytes, iter_rows, note, write_file, write_jsonl
from harness.errors import DataError
from tasks.common.prepare import ParquetCopy, present_columns
from tasks.common.question_file import question_line
from tasks.common.requests import LLAVA_SUFFIX
from tasks.textvqa.scorer import OCR_MARKER

HF_DATASET = "lmms-lab/textvqa"
VALIDATION = ParquetCopy(
    "textvqa", "data/validation-*.parquet", "TextVQA validation", expected=5000, official="val file"
)
HF_PATTERNS = {"textvqa": (VALIDATION.pattern,)}

ANNOTATIONS = "textvqa/TextVQA_0.5.1_val.json"
LLAVA_QUESTIONS = "textvqa/llava_textvqa_val_v051_ocr.jsonl"
IMAGES_DIR = "textvqa/train_images"
HEADER = {"dataset_type": "val", "dataset_name": "textvqa", "dataset_version": "0.5.1"}

REQUIRED = ("image_id", "question_id", "question", "answers", "ocr_tokens", "image")
# Official key order of one annotation item, with the filler used when the copy lacks the column.
FIELDS: tuple[tuple[str, Any], ...] = (
    ("question", None),
    ("image_id", None),
    ("image_classes", []),
    ("flickr_original_url", None),
    ("flickr_300k_url", None),
    ("image_width", None),
    ("image_height", None),
    ("answers", None),
    ("question_tokens", []),
    ("question_id", None),
    ("set_name", "val"),
)


def annotation(row: dict[str, Any], present: set[str]) -> dict[str, Any]:
    """One official annotation item from a row of the copy."""
    out: dict[str, Any] = {}
    for name, filler in FIELDS:
        value = row.get(name) if name in present else None
        out[name] = json.loads(json.dumps(filler)) if value is None else value
    return out


def llava_text(question: str, tokens: Sequence[str]) -> str:
    """LLaVA's prompt: question (first letter upper-cased), the OCR-token line, the short-answer suffix."""
    return f"{question[:1].upper()}{question[1:]}\n{OCR_MARKER}{', '.join(tokens)}{LLAVA_SUFFIX}"


def _checked_tokens(value: Any, where: str) -> list[str]:
    tokens = [str(t) for t in (value or [])]
    if any("\n" in t for t in tokens):
        raise DataError(f"{where}: an OCR token has a line break; LLaVA's three-line prompt cannot hold it")
    return tokens


def prepare_root(source: Path, root: Path) -> None:
    """Write TextVQA val (official annotations, LLaVA question file, images) under ``root``."""
    source, root = Path(source), Path(root)
    paths = VALIDATION.files(source)
    present = present_columns(paths, REQUIRED, HF_DATASET)
    for name, filler in FIELDS:
        if name not in present:
            note(f"textvqa: the copy has no '{name}' column; every item got {json.dumps(filler)}")
    columns = sorted({*REQUIRED, *(name for name, _ in FIELDS if name in present)})
    items: list[dict[str, Any]] = []
    llava: list[dict[str, Any]] = []
    written: set[str] = set()
    for where, row in iter_rows(paths, "textvqa questions", columns):
        item = annotation(row, present)
        image_id = str(item["image_id"])
        items.append(item)
        text = llava_text(str(item["question"]), _checked_tokens(row["ocr_tokens"], where))
        llava.append(question_line(image_id, f"{image_id}.jpg", text))
        if image_id not in written:
            write_file(root / IMAGES_DIR / f"{image_id}.jpg", image_bytes(row["image"], where))
            written.add(image_id)
    VALIDATION.check_count(len(items))
    write_file(root / ANNOTATIONS, json.dumps({**HEADER, "data": items}))
    write_jsonl(root / LLAVA_QUESTIONS, llava)
