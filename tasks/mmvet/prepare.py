"""MM-Vet from the lmms-lab parquet copy, in the official ``mm-vet`` layout.

Writes under the data root:

- ``mm-vet/mm-vet.json``: ``v1_<n>`` -> {imagename, question, answer, capability, imagesource} (the
  official key order), in the order of the copy;
- ``mm-vet/images/<imagename>``: each row's image, bytes as stored.

Schema of the copy (lmms-lab/MMVet, split ``test``, ``data/test-*.parquet``), as lmms-eval's
``tasks/mmvet`` reads it: ``question_id`` ("v1_0"...), ``image`` (the ``datasets`` Image struct),
``question``, ``answer``, ``capability`` (the names joined by ","; a list is accepted too) and, optional
here, ``image_source``. The image name is the struct's ``path`` when it has one, else ``<question_id>``
with the extension of the image data (the official file lets questions share an image; such a copy then
holds the same image under several names).

Not in the copy, so not written: ``mm-vet/mmvet_judge_prompt.txt``, the grader's instruction. Add it by
hand: the ``prompt`` string of ``mm-vet_evaluator.py`` (https://github.com/yuweihao/MM-Vet), saved as
UTF-8 text ending with one newline; ``harness data`` names it as missing until then.
"""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any

from harness.data.prepare import image_bytes, image_format, iter_rows, note, write_file
from harness.errors import DataError
from tasks.common.prepare import ParquetCopy, present_columns

HF_DATASET = "lmms-lab/MMVet"
TEST = ParquetCopy("mmvet", "data/test-*.parquet", "MM-Vet test", expected=218, official="mm-vet.json")
HF_PATTERNS = {"mmvet": (TEST.pattern,)}
QUESTIONS = "mm-vet/mm-vet.json"
IMAGES_DIR = "mm-vet/images"
REQUIRED = ("question_id", "image", "question", "answer", "capability")
_EXTENSIONS = {"jpeg": ".jpg", "png": ".png"}


def capability_list(value: Any, where: str) -> list[str]:
    """The capability names of a row: a comma-joined string or a list."""
    if isinstance(value, str):
        names = [part.strip() for part in value.split(",") if part.strip()]
    elif isinstance(value, list | tuple):
        names = [str(part).strip() for part in value]
    else:
        names = []
    if not names:
        raise DataError(f"{where}: column 'capability' holds no capability names ({value!r})")
    return names


def official_id(value: Any, where: str) -> str:
    """``v1_<n>`` from the copy's question id (an integer n is accepted too)."""
    text = str(value).strip()
    if text.isdigit():
        return f"v1_{int(text)}"
    if not text.startswith("v1_"):
        raise DataError(f"{where}: question_id {text!r} is not of the form v1_<n>")
    return text


def image_name(image: Any, qid: str, data: bytes) -> str:
    """The struct's file name when it has one, else the question id with the data's extension."""
    path = image.get("path") if isinstance(image, dict) else None
    if path:
        name = PurePosixPath(str(path)).name
        if name:
            return name
    return qid + _EXTENSIONS.get(image_format(data), ".png")


def prepare_root(source: Path, root: Path) -> None:
    """Write ``mm-vet/mm-vet.json`` and the images under ``root`` from the parquet files under ``source``."""
    source, root = Path(source), Path(root)
    paths = TEST.files(source)
    present = present_columns(paths, REQUIRED, HF_DATASET)
    columns = [*REQUIRED, *(["image_source"] if "image_source" in present else [])]
    if "image_source" not in present:
        note("mmvet: the copy has no 'image_source' column; imagesource is null")
    data: dict[str, dict[str, Any]] = {}
    images: dict[str, bytes] = {}
    for where, row in iter_rows(paths, "mm-vet questions", columns):
        qid = official_id(row["question_id"], where)
        if qid in data:
            raise DataError(f"{where}: duplicate question_id {qid}")
        raw = image_bytes(row["image"], where)
        name = image_name(row["image"], qid, raw)
        if images.setdefault(name, raw) != raw:
            raise DataError(f"{where}: two different images are both named {name}")
        data[qid] = {
            "imagename": name,
            "question": row["question"],
            "answer": row["answer"],
            "capability": capability_list(row["capability"], where),
            "imagesource": row.get("image_source"),
        }
    TEST.check_count(len(data))
    note("mmvet: mm-vet/mmvet_judge_prompt.txt is not in the copy; add the official grader instruction by hand")
    write_file(root / QUESTIONS, json.dumps(data, indent=4))
    for name, raw in images.items():
        write_file(root / IMAGES_DIR / name, raw)
