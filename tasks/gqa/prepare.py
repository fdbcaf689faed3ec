"""GQA testdev-balanced from the lmms-lab parquet copy, in LLaVA's ``playground/data/eval/gqa`` layout.

Writes under the data root:

- ``gqa/data/testdev_balanced_questions.json``: the official questions file, a JSON object keyed by
  question id, each value with the official fields (``semantic``, ``entailed``, ``equivalent``,
  ``question``, ``imageId``, ``isBalanced``, ``groups``, ``answer``, ``semanticStr``, ``annotations``,
  ``types``, ``fullAnswer``) in the official key order;
- ``gqa/llava_gqa_testdev_balanced.jsonl``: LLaVA's question file (``question_id``, ``image`` =
  ``<imageId>.jpg``, ``text`` = question + the short-answer suffix, ``category`` "default"), in the
  order of the copy;
- ``gqa/data/images/<imageId>.jpg``: every image of the copy, bytes as stored (not re-encoded).

Schema of the copy, and where each fact comes from:

- configs ``testdev_balanced_instructions`` (questions) and ``testdev_balanced_images``, split
  ``testdev``: lmms-eval ``tasks/gqa/gqa.yaml`` (dataset_name, test_split) and ``tasks/gqa/utils.py``
  (loads ``testdev_balanced_images``, split ``testdev``, reads ``id`` and ``image``);
- files ``<config>/testdev-00000-of-00001.parquet``: the lmms-lab/GQA repository tree on the hub;
- question columns ``id``, ``imageId``, ``question``, ``isBalanced``: the dataset card's
  ``dataset_info`` (shown for the ``*_instructions`` configs); ``answer`` (lmms-eval's
  ``doc_to_target``); ``fullAnswer``, ``types``, ``semantic``, ``semanticStr``, ``groups``,
  ``entailed``, ``equivalent``: reported from the hub's dataset viewer by public projects that use
  the copy, not checked here, so each is optional below;
- images: the ``datasets`` Image feature, a struct ``{"bytes", "path"}`` (dataset card: ``dtype: image``).

Structured fields are taken as stored (structs and lists) or decoded when stored as JSON text.
Where the copy lacks one, the file gets a filler and the sources record says so:
``types`` -> "unknown" (binary/open and the type breakdowns are then meaningless; accuracy is not
affected), ``semantic`` -> [] (steps breakdown 0), ``groups`` -> nulls (distribution 0),
``entailed``/``equivalent`` -> [], ``annotations`` -> empty, ``semanticStr``/``fullAnswer`` -> "",
``isBalanced`` -> true (the config holds the balanced questions only). Struct columns made from
dicts with varying keys (``annotations``) come back with every key seen in the column; keys whose
value is null are dropped to restore the original dicts.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness.data.prepare import find_files, image_bytes, image_format, iter_rows, note, write_file, write_jsonl
from harness.errors import DataError
from tasks.common.prepare import ParquetCopy, present_columns
from tasks.common.question_file import question_line
from tasks.common.requests import LLAVA_SUFFIX

HF_DATASET = "lmms-lab/GQA"
QUESTIONS_CONFIG = "testdev_balanced_instructions"
QUESTIONS = ParquetCopy(
    "gqa", f"{QUESTIONS_CONFIG}/testdev-*.parquet", f"GQA {QUESTIONS_CONFIG}", 12578, official="testdev-balanced file"
)
IMAGES_PATTERN = "testdev_balanced_images/testdev-*.parquet"
HF_PATTERNS = {"gqa": (QUESTIONS.pattern, IMAGES_PATTERN)}

OFFICIAL_QUESTIONS = "gqa/data/testdev_balanced_questions.json"
LLAVA_QUESTIONS = "gqa/llava_gqa_testdev_balanced.jsonl"
IMAGES_DIR = "gqa/data/images"

REQUIRED = ("id", "imageId", "question", "answer")
# Official key order of one question, with the filler used when the copy lacks the field.
FIELDS: tuple[tuple[str, Any], ...] = (
    ("semantic", []),
    ("entailed", []),
    ("equivalent", []),
    ("question", None),
    ("imageId", None),
    ("isBalanced", True),
    ("groups", {"global": None, "local": None}),
    ("answer", None),
    ("semanticStr", ""),
    ("annotations", {"answer": {}, "question": {}, "fullAnswer": {}}),
    ("types", {"structural": "unknown", "semantic": "unknown", "detailed": "unknown"}),
    ("fullAnswer", ""),
)
STRUCTURED = frozenset({"semantic", "entailed", "equivalent", "groups", "annotations", "types"})


def decode_structured(value: Any, name: str, where: str) -> Any:
    """A struct/list column value as Python data; JSON (or Python-literal) text is decoded."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        pass
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError) as exc:
        raise DataError(f"{where}: column '{name}' is text that is neither JSON nor a literal: {value[:60]!r}") from exc


def _program(steps: Any, where: str) -> list[dict[str, Any]]:
    """The ``semantic`` program with each step in the official key order and integer dependencies."""
    if not isinstance(steps, list):
        raise DataError(f"{where}: column 'semantic' is not a list of steps")
    out = []
    for i, step in enumerate(steps):
        if not isinstance(step, dict) or "operation" not in step or "argument" not in step:
            raise DataError(f"{where}: semantic[{i}] lacks 'operation' or 'argument'")
        deps = [int(d) for d in (step.get("dependencies") or [])]
        out.append({"operation": step["operation"], "dependencies": deps, "argument": step["argument"]})
    return out


def _annotations(value: Any) -> dict[str, Any]:
    """Annotation dicts without the null entries a struct column adds for keys other rows had."""
    if not isinstance(value, dict):
        return {}
    return {k: {a: b for a, b in v.items() if b is not None} if isinstance(v, dict) else v for k, v in value.items()}


def official_question(row: dict[str, Any], present: set[str], where: str) -> dict[str, Any]:
    """One question in the official schema, from a row of the copy."""
    out: dict[str, Any] = {}
    for name, filler in FIELDS:
        if name not in present:
            out[name] = json.loads(json.dumps(filler))
            continue
        value = row[name]
        if name in STRUCTURED:
            value = decode_structured(value, name, where)
        if name == "semantic":
            value = _program(value, where)
        elif name == "annotations":
            value = _annotations(value)
        elif name in ("entailed", "equivalent"):
            value = [str(v) for v in (value or [])]
        elif name == "isBalanced":
            value = bool(value)
        elif value is None and filler is not None:
            value = json.loads(json.dumps(filler))
        out[name] = value
    return out


def _note_fillers(present: set[str]) -> None:
    for name, filler in FIELDS:
        if name not in present:
            note(f"gqa: the copy has no '{name}' column; every question got {json.dumps(filler)}")


def read_questions(source: Path) -> dict[str, dict[str, Any]]:
    """The official questions, keyed by id, in the order of the copy."""
    paths = QUESTIONS.files(source)
    present = present_columns(paths, REQUIRED, QUESTIONS_CONFIG)
    _note_fillers(present)
    columns = [c for c in ("id", *(n for n, _ in FIELDS)) if c in present]
    questions: dict[str, dict[str, Any]] = {}
    for where, row in iter_rows(paths, "gqa questions", columns):
        qid = str(row["id"])
        if qid in questions:
            raise DataError(f"{where}: duplicate question id {qid} (overlapping parquet files?)")
        questions[qid] = official_question(row, present, where)
    QUESTIONS.check_count(len(questions))
    return questions


def llava_records(questions: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """LLaVA's question-file lines for the official questions."""
    return [question_line(qid, f"{q['imageId']}.jpg", f"{q['question']}{LLAVA_SUFFIX}") for qid, q in questions.items()]


def write_images(source: Path, root: Path, needed: Iterable[str]) -> None:
    """Every image of the copy as ``<id>.jpg``; notes images that are missing or not JPEG."""
    paths = find_files(source, (IMAGES_PATTERN,), "GQA testdev_balanced_images parquet files")
    folder = root / IMAGES_DIR
    written: set[str] = set()
    not_jpeg = 0
    for where, row in iter_rows(paths, "gqa images", ("id", "image")):
        data = image_bytes(row["image"], where)
        not_jpeg += image_format(data) != "jpeg"
        write_file(folder / f"{row['id']}.jpg", data)
        written.add(str(row["id"]))
    missing = sorted(set(needed) - written)
    if missing:
        note(f"gqa: {len(missing)} images asked about are not in the copy, e.g. {missing[0]}")
    if not_jpeg:
        note(f"gqa: {not_jpeg} images are not JPEG data (re-encoded by the copy); written as they are under .jpg")


def prepare_root(source: Path, root: Path) -> None:
    """Write GQA testdev-balanced (official questions, LLaVA question file, images) under ``root``."""
    source, root = Path(source), Path(root)
    questions = read_questions(source)
    write_file(root / OFFICIAL_QUESTIONS, json.dumps(questions))
    write_jsonl(root / LLAVA_QUESTIONS, llava_records(questions))
    write_images(source, root, {q["imageId"] for q in questions.values()})
