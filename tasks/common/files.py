"""Data files the tasks share: declarations of LLaVA question files and image folders, and question-file reading."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from harness.data.readers import iter_jsonl, require_fields
from harness.errors import DataError
from harness.types import DataFile
from tasks.common.requests import LLAVA_EVAL_ZIP

QUESTION_FIELDS = ("question_id", "image", "text")  # what every line of a LLaVA question file has
Line = tuple[str, dict[str, Any]]  # ("file:line", the parsed record)


def llava_file(path: str, description: str, needed_for: Literal["score", "run"] = "score") -> DataFile:
    """A question file of LLaVA's eval.zip; ``needed_for="run"`` where the official scorer does not read it."""
    return DataFile(path=path, needed_for=needed_for, description=description, source=LLAVA_EVAL_ZIP)


def image_folder(path: str, description: str, source: str) -> DataFile:
    """A folder of images: needed to run a model, not to score answers."""
    return DataFile(path=path, kind="dir", needed_for="run", description=description, source=source)


def question_lines(path: Path, fields: tuple[str, ...] = QUESTION_FIELDS) -> Iterator[Line]:
    """Each line of a JSONL question file, which must have ``fields`` (a DataError naming the line)."""
    for lineno, rec in iter_jsonl(path):
        where = f"{path}:{lineno}"
        require_fields(rec, fields, where)
        yield where, rec


def unique_question_lines(path: Path, fields: tuple[str, ...] = QUESTION_FIELDS) -> Iterator[Line]:
    """``question_lines`` where a repeated ``question_id`` is a DataError naming the line."""
    seen: set[str] = set()
    for where, rec in question_lines(path, fields):
        qid = str(rec["question_id"])
        if qid in seen:
            raise DataError(f"{where}: duplicate question_id {qid}")
        seen.add(qid)
        yield where, rec
