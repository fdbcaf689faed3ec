"""MMMU validation from a hub parquet copy, in the layout of ``tasks/mmmu/__init__.py``.

Copies (each with the MMMU columns ``id``, ``question``, ``options`` (a Python list literal as text),
``answer``, ``question_type`` ("multiple-choice" / "open"), ``image_1`` .. ``image_7`` (the ``datasets``
Image struct, null where absent), ``img_type``, ``topic_difficulty``, ``subfield``, ``explanation``):

- ``lmms-lab/MMMU`` (and lmms-eval's ``lmms-lab-encoder/MMMU``): ``data/validation-*.parquet``;
- ``MMMU/MMMU``: one config per subject, ``<Subject>/validation-*.parquet``.

Writes ``mmmu/anns_for_eval.json`` (rows in file order), ``mmmu/answer_dict_val.json`` (ground truth:
the answer letter, or the answer text, a list where the dataset writes a Python list of answers, as in
MMMU's own file) and ``mmmu/all_images/<id>_<image_N>.<png|jpg>`` (bytes as stored).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.data.prepare import image_bytes, image_format, iter_rows, note, write_file
from harness.errors import DataError
from tasks.common.prepare import ParquetCopy
from tasks.mmmu.files import N_IMAGE_COLUMNS, answer_entry, parse_options, question_entry
from tasks.mmmu.subjects import SUBJECTS, subject_of

HF_DATASET = "lmms-lab/MMMU"
LMMS_PATTERN = "data/validation-*.parquet"
MMMU_PATTERN = "*/validation-*.parquet"
HF_PATTERNS = {
    "mmmu": {
        "lmms-lab/MMMU": (LMMS_PATTERN,),
        "lmms-lab-encoder/MMMU": (LMMS_PATTERN,),
        "MMMU/MMMU": (MMMU_PATTERN,),
    }
}
VALIDATION = ParquetCopy("mmmu", MMMU_PATTERN, "MMMU validation", 900, "validation split")

ANNS = "mmmu/anns_for_eval.json"
ANSWER_DICT = "mmmu/answer_dict_val.json"
IMAGES_DIR = "mmmu/all_images"
IMAGE_COLUMNS = tuple(f"image_{n}" for n in range(1, N_IMAGE_COLUMNS + 1))
REQUIRED = ("id", "question", "options", "answer", "question_type")
EXTRA = ("subfield", "topic_difficulty", "img_type")
SUFFIX = {"jpeg": "jpg", "png": "png"}


def _text(row: dict[str, Any], key: str, where: str) -> str:
    value = row.get(key)
    if not isinstance(value, str):
        raise DataError(f"{where}: '{key}' is not text")
    return value


def prepare_root(source: Path, root: Path) -> None:
    """Write the MMMU validation files under ``root``."""
    source, root = Path(source), Path(root)
    paths = VALIDATION.files(source)
    entries: list[dict[str, Any]] = []
    answers: dict[str, Any] = {}
    odd_images = 0
    for where, row in iter_rows(paths, "mmmu questions"):
        for key in REQUIRED:
            if key not in row:
                raise DataError(f"{where}: missing column '{key}' of MMMU")
        sid = _text(row, "id", where)
        if subject_of(sid) not in SUBJECTS:
            raise DataError(f"{where}: id {sid} names no MMMU subject")
        if sid in answers:
            raise DataError(f"{where}: duplicate id {sid}")
        qtype, answer = _text(row, "question_type", where), _text(row, "answer", where)
        images: dict[str, str] = {}
        for column in IMAGE_COLUMNS:
            if row.get(column) is None:
                continue
            data = image_bytes(row[column], f"{where} {column}")
            kind = image_format(data)
            odd_images += kind not in SUFFIX
            name = f"{sid}_{column}.{SUFFIX.get(kind, 'png')}"
            write_file(root / IMAGES_DIR / name, data)
            images[column] = name
        extra = {key: str(row[key]) for key in EXTRA if row.get(key) is not None}
        options = parse_options(row["options"], where)
        entries.append(question_entry(sid, _text(row, "question", where), qtype, options, answer, images, extra))
        answers[sid] = answer_entry(qtype, answer)
    VALIDATION.check_count(len(entries))
    if odd_images:
        note(f"mmmu: {odd_images} images are neither PNG nor JPEG data; written as they are under .png")
    write_file(root / ANNS, json.dumps(entries, indent=1, ensure_ascii=False))
    write_file(root / ANSWER_DICT, json.dumps(answers, indent=1, ensure_ascii=False))
