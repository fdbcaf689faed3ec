"""Reading MMBench TSV files as the official tools do (pandas ``read_table``), with the csv module.

Two layouts:

- legacy ``mmbench_dev_20230712.tsv`` (what LLaVA-1.5 / TinyLLaVA use): columns ``index, question,
  hint, A, B, C, D, answer, category, image, source, l2-category, comment, split``; every row
  carries its own base64 image, and the CircularEval passes are rows of their own at
  ``index + k * 1_000_000``.
- VLMEvalKit's ``MMBench_DEV_EN.tsv`` / ``MMBench_DEV_EN_V11.tsv``: the same columns (order may
  differ), but an image is stored once: an ``image`` cell of at most 64 characters is the index of
  the row holding the base64 image (VLMEvalKit's ``image_map``). Its files carry the circular
  passes as rows too; a file with no row at or above 1_000_000 gets the passes generated here (see
  ``add_circular_passes``).

Cells are read the way pandas reads them (quoting, blank lines skipped, the default NA strings
become missing), since LLaVA's prompt builder, its submission converter and VLMEvalKit all go
through pandas.
"""

from __future__ import annotations

import base64
import binascii
import csv
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from harness.errors import DataError

LEGACY_FILE = "mmbench/mmbench_dev_20230712.tsv"
VLMEVAL_FILES = ("mmbench/MMBench_DEV_EN.tsv", "mmbench/MMBench_DEV_EN_V11.tsv")
ROUND = 1_000_000  # circular copy k of question i has index i + k * ROUND
REQUIRED_COLUMNS = ("index", "question", "A", "B", "image")  # no "answer": a test-split file can still be run
OPTION_COLUMNS = tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
IMAGE_REFERENCE_MAX = 64  # VLMEvalKit: an image cell this short names another row's index
# pandas' default NA strings (pandas._libs.parsers.STR_NA_VALUES): such a cell is NaN after read_table.
PANDAS_NA = frozenset(
    {
        "",
        "#N/A",
        "#N/A N/A",
        "#NA",
        "-1.#IND",
        "-1.#QNAN",
        "-NaN",
        "-nan",
        "1.#IND",
        "1.#QNAN",
        "<NA>",
        "N/A",
        "NA",
        "NULL",
        "NaN",
        "None",
        "n/a",
        "nan",
        "null",
    }
)
_CSV_FIELD_LIMIT = 2**31 - 1  # base64 images exceed csv's default 128 KiB field limit


def is_na(value: str | None) -> bool:
    """Whether pandas reads this cell as missing (NaN)."""
    return value is None or value in PANDAS_NA


def is_none(value: str | None) -> bool:
    """LLaVA's ``is_none`` on a pandas cell: NaN, or the text "nan" / "none" in any case."""
    return is_na(value) or value.lower() in ("nan", "none")  # type: ignore[union-attr]


@dataclass(frozen=True)
class Row:
    """One TSV row: the raw cells by column name (NA cells as None) and where it was read."""

    lineno: int
    index: int
    cells: dict[str, str | None] = field(default_factory=dict)
    na_texts: dict[str, str] = field(default_factory=dict)  # the file's text of each cell read as NA ("nan", ...)

    def get(self, column: str) -> str | None:
        return self.cells.get(column)

    @property
    def group(self) -> int:
        """The base question (CircularEval group) this row belongs to."""
        return self.index % ROUND

    @property
    def round(self) -> int:
        return self.index // ROUND

    def choices(self) -> dict[str, str]:
        """VLMEvalKit's ``build_choices``: every option column whose cell is not NA, in letter order."""
        return {c: v for c in OPTION_COLUMNS if (v := self.cells.get(c)) is not None}

    def llava_options(self) -> list[tuple[str, str]]:
        """LLaVA's ``get_options``: options A, B, C, D up to the first one that ``is_none``."""
        out: list[tuple[str, str]] = []
        for letter in "ABCD":
            value = self.cells.get(letter)
            if is_none(value):
                break
            out.append((letter, value))  # type: ignore[arg-type]
        return out


@dataclass(frozen=True)
class TsvTable:
    """A parsed MMBench TSV: its header and rows in file order."""

    path: Path
    header: list[str]
    rows: list[Row]


def is_legacy(path: Path, legacy_file: str = LEGACY_FILE) -> bool:
    """Whether ``path`` is the legacy file ``legacy_file`` (passes as rows, one base64 image per row)."""
    return Path(path).name == Path(legacy_file).name


def find_tsv(root: Path, files: tuple[str, ...] = (LEGACY_FILE, *VLMEVAL_FILES)) -> Path:
    """The data file to use: the first of ``files`` present (by default the legacy file, else
    VLMEvalKit's V1.0, then V1.1)."""
    for rel in files:
        if (Path(root) / rel).is_file():
            return Path(root) / rel
    names = ", ".join(files)
    raise DataError(f"{root}: no MMBench dev file found (looked for {names})")


def _records(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(first line number, fields) per record; quoted fields may span lines; blank lines are skipped."""
    old_limit = csv.field_size_limit(_CSV_FIELD_LIMIT)
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, delimiter="\t", quotechar='"', doublequote=True, strict=False)
            start = 1
            try:
                for fields in reader:
                    if fields:
                        yield start, fields
                    start = reader.line_num + 1
            except csv.Error as exc:
                raise DataError(f"{path}:{start}: malformed TSV record: {exc}") from exc
            except UnicodeDecodeError as exc:
                raise DataError(f"{path}:{start}: not UTF-8 text") from exc
    except FileNotFoundError as exc:
        raise DataError(f"{path}: file not found") from exc
    finally:
        csv.field_size_limit(old_limit)


def read_table(path: Path) -> TsvTable:
    """Read an MMBench TSV; a wrong column count or a bad or repeated index names the file and line."""
    path = Path(path)
    records = _records(path)
    try:
        header_line, header = next(records)
    except StopIteration:
        raise DataError(f"{path}: empty file") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise DataError(f"{path}:{header_line}: missing column '{missing[0]}' (header: {', '.join(header)})")
    if len(set(header)) != len(header):
        raise DataError(f"{path}:{header_line}: repeated column names in the header")
    rows: list[Row] = []
    seen: dict[int, int] = {}
    for lineno, fields in records:
        if len(fields) != len(header):
            raise DataError(f"{path}:{lineno}: expected {len(header)} tab-separated columns, found {len(fields)}")
        cells = {name: (None if is_na(value) else value) for name, value in zip(header, fields)}
        na_texts = {name: value for name, value in zip(header, fields) if cells[name] is None and value}
        raw_index = fields[header.index("index")]
        try:
            index = int(raw_index)
        except ValueError:
            raise DataError(f"{path}:{lineno}: index {raw_index!r} is not an integer") from None
        if index < 0:
            raise DataError(f"{path}:{lineno}: index {index} is negative")
        if index in seen:
            raise DataError(f"{path}:{lineno}: index {index} repeats the row of line {seen[index]}")
        seen[index] = lineno
        rows.append(Row(lineno, index, cells, na_texts))
    return TsvTable(path, header, rows)


def image_strings(table: TsvTable, references: bool) -> dict[int, str]:
    """Each row's base64 image text; with ``references`` (VLMEvalKit files), a cell of at most 64
    characters naming another row's index is replaced by that row's image, as VLMEvalKit does.

    A short cell that names no row holding an image is kept as it is: like any undecodable image it
    loads, and fails when the image is opened (the legacy file never holds references: LLaVA decodes
    every cell as base64).
    """
    cells = {str(row.index): row.get("image") or "" for row in table.rows}
    out: dict[int, str] = {}
    for row in table.rows:
        value = cells[str(row.index)]
        if references and 0 < len(value) <= IMAGE_REFERENCE_MAX:
            target = cells.get(value.strip(), "")
            if len(target) > IMAGE_REFERENCE_MAX:
                value = target
        out[row.index] = value
    return out


def decode_image(text: str) -> bytes:
    """The bytes LLaVA's ``load_image_from_base64`` opens; undecodable text is kept as is.

    The raw text then fails to open as an image when a model is run, which the runner records as
    that sample's error (loading never fails on a bad image).
    """
    try:
        return base64.b64decode(text)
    except (binascii.Error, ValueError):
        return text.encode("utf-8", errors="replace")


def add_circular_passes(table: TsvTable) -> TsvTable:
    """Generate the CircularEval passes of a file that holds base questions only.

    A question with N options gets N-1 copies at ``index + k * ROUND`` whose options are shifted k
    places (option i of copy k is option i-k of the base, cyclically) and whose answer letter moves
    with its option, as most groups of the legacy 20230712 file are built. Files that already
    hold passes (any index at or above ROUND) are returned unchanged.
    """
    if any(row.index >= ROUND for row in table.rows):
        return table
    copies: list[Row] = []
    for rnd in range(1, len(OPTION_COLUMNS)):
        for row in table.rows:
            letters = list(row.choices())
            n = len(letters)
            if rnd >= n:
                continue
            texts = [row.cells[letter] for letter in letters]
            cells = dict(row.cells)
            for i, letter in enumerate(letters):
                cells[letter] = texts[(i - rnd) % n]
            answer = row.get("answer")
            if answer in letters:
                cells["answer"] = letters[(letters.index(answer) + rnd) % n]
            cells["index"] = str(row.index + rnd * ROUND)
            copies.append(replace(row, index=row.index + rnd * ROUND, cells=cells))
    return replace(table, rows=table.rows + copies)
