"""Readers for the official file formats that fail with the file and line at fault."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from harness.errors import DataError

TOO_DEEP = "JSON nested too deeply to read (no official file nests more than a few levels)"


def read_json(path: Path) -> Any:
    """Parse a JSON file; a syntax error names the file, line and column."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise DataError(f"{path}: file not found") from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}:{exc.colno}: malformed JSON: {exc.msg}") from exc
    except RecursionError:
        raise DataError(f"{path}: {TOO_DEEP}") from None


# The C scanner behind ``json.loads``, called directly: one line costs half as much (no per-call wrapper).
_scan_value = json.JSONDecoder().scan_once
_JSON_SPACE = " \t\n\r"  # what json.loads skips around a value


def _json_line(line: str) -> Any:
    """``json.loads(line)``: the same value, or the same exception (the scanner fails over to ``json.loads``)."""
    text = line.strip(_JSON_SPACE)
    try:
        value, end = _scan_value(text, 0)
    except (StopIteration, ValueError):  # ValueError: JSONDecodeError, whose position json.loads gives right
        end = -1
    return value if end == len(text) else json.loads(line)


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line; a bad line names the file and line."""
    path = Path(path)
    try:
        handle = path.open(encoding="utf-8")
    except FileNotFoundError as exc:
        raise DataError(f"{path}: file not found") from exc
    with handle:
        lineno = 0
        try:
            for lineno, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    obj = _json_line(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}:{lineno}: malformed JSON line: {exc.msg} (column {exc.colno})") from exc
                except RecursionError:
                    raise DataError(f"{path}:{lineno}: {TOO_DEEP}") from None
                if not isinstance(obj, dict):
                    raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
                yield lineno, obj
        except UnicodeDecodeError as exc:  # the file is decoded in blocks: find the line itself
            raise DataError(f"{path}:{_first_undecodable_line(path)}: not UTF-8 text") from exc


def _first_undecodable_line(path: Path) -> int:
    """The number of the first line that is not UTF-8, lines ending as the text reader ends them (no newline
    byte is ever part of a UTF-8 character)."""
    lines = path.read_bytes().replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    for lineno, raw in enumerate(lines, start=1):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return lineno
    return 1


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [obj for _, obj in iter_jsonl(path)]


def require_fields(obj: dict[str, Any], fields: tuple[str, ...], where: str) -> None:
    """Raise a DataError naming ``where`` (file:line) and the first missing field."""
    for name in fields:
        if name not in obj:
            raise DataError(f"{where}: missing field '{name}'")


def read_tsv(path: Path, expected_columns: int | None = None) -> list[tuple[int, list[str]]]:
    """Read a tab-separated file as (line number, fields); wrong column counts name the line."""
    path = Path(path)
    rows: list[tuple[int, list[str]]] = []
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            for lineno, line in enumerate(handle, start=1):
                stripped = line.rstrip("\n").rstrip("\r")
                if not stripped:
                    continue
                fields = stripped.split("\t")
                if expected_columns is not None and len(fields) != expected_columns:
                    raise DataError(
                        f"{path}:{lineno}: expected {expected_columns} tab-separated columns, found {len(fields)}"
                    )
                rows.append((lineno, fields))
    except FileNotFoundError as exc:
        raise DataError(f"{path}: file not found") from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text") from exc
    return rows
