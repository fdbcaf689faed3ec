"""MMBench dev (English) from an lmms-lab parquet copy, as the TSV LLaVA-1.5 / TinyLLaVA read.

Writes ``mmbench/mmbench_dev_20230712.tsv`` (the legacy file: columns ``index, question, hint, A, B,
C, D, answer, category, image, source, l2-category, comment, split``; every row, circular copies
included, with its own base64 image; missing cells empty, as pandas writes NaN), in the order of
the copy. When the copy holds another question set than the 20230712 one (4377 rows, 1176 base
questions), the same columns go to ``mmbench/MMBench_DEV_EN.tsv`` instead (the task's loader reads
it when the legacy file is absent; its scores are not comparable with the papers').

Copies, and where each fact comes from:

- ``lmms-lab/MMBench_EN``: one config, split ``dev`` (4377 rows, the count of the 20230712 file),
  files ``data/dev-*.parquet``; columns ``index`` (int), ``question``, ``hint``, ``A``-``D``,
  ``answer``, ``category``, ``image`` (Image), ``source``, ``l2-category``, ``comment``, ``split``:
  the dataset card's ``dataset_info``. Its row count is the 20230712 file's, so it is taken for that
  file's copy; prefer it (``--repo lmms-lab/MMBench_EN``).
- ``lmms-lab/MMBench`` (what lmms-eval reads): config ``en``, split ``dev``, files
  ``en/dev-*.parquet``; the same columns with ``index`` as text and ``L2-category``: the dataset
  card's ``dataset_info`` (the ``<config>/<split>-*.parquet`` file layout: a public mirror's
  ``dataset_info.json`` download list); lmms-eval ``tasks/mmbench/_default_template_mmbench_en_yaml``
  (dataset_name ``en``) and ``mmbench_en_dev.yaml`` (split ``dev``). Whether its dev split is the
  20230712 set is decided from its row and question counts.

Limitations: images are base64 of the bytes the copy stores (the official TSV's base64 text is not
recoverable when the copy re-encoded an image); cells the copy lacks are written empty and recorded.
"""

from __future__ import annotations

import base64
import csv
import io
from pathlib import Path
from typing import Any

from harness.data.prepare import find_files, image_bytes, iter_rows, note, write_file
from harness.errors import DataError
from tasks.common.prepare import present_columns

HF_DATASET = "lmms-lab/MMBench_EN"
MMBENCH_EN_PATTERN = "data/dev-*.parquet"
MMBENCH_PATTERN = "en/dev-*.parquet"
HF_PATTERNS = {
    "mmbench": {
        "lmms-lab/MMBench_EN": (MMBENCH_EN_PATTERN,),
        "lmms-lab-encoder/MMBench_EN": (MMBENCH_EN_PATTERN,),
        "lmms-lab/MMBench": (MMBENCH_PATTERN,),
        "lmms-lab-encoder/MMBench": (MMBENCH_PATTERN,),
    }
}
LEGACY_FILE = "mmbench/mmbench_dev_20230712.tsv"
OTHER_SET_FILE = "mmbench/MMBench_DEV_EN.tsv"
LEGACY_ROWS, LEGACY_QUESTIONS = 4377, 1176
ROUND = 1_000_000
TSV_COLUMNS = ("index", "question", "hint", "A", "B", "C", "D", "answer", "category", "image", "source",
               "l2-category", "comment", "split")
REQUIRED = ("index", "question", "A", "B", "answer", "image")
L2_NAMES = ("l2-category", "L2-category")


def _layout(source: Path) -> tuple[list[Path], bool]:
    """The dev parquet files and whether they are lmms-lab/MMBench_EN's (else lmms-lab/MMBench's ``en``)."""
    for pattern, is_mmbench_en in ((MMBENCH_EN_PATTERN, True), (MMBENCH_PATTERN, False)):
        try:
            return find_files(source, (pattern,), "MMBench dev parquet files"), is_mmbench_en
        except DataError:
            continue
    raise DataError(f"{source}: no MMBench dev parquet files (expected {MMBENCH_EN_PATTERN} or {MMBENCH_PATTERN})")


def _index(value: Any, where: str) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        raise DataError(f"{where}: index {value!r} is not an integer") from None


def _cell(value: Any) -> str:
    """A TSV cell: missing values empty (pandas writes NaN so), anything else as text."""
    return "" if value is None else str(value)


def tsv_row(row: dict[str, Any], l2_name: str | None, where: str) -> list[str]:
    """One legacy-TSV row (columns TSV_COLUMNS) from a row of the copy."""
    cells = {name: _cell(row.get(name)) for name in TSV_COLUMNS if name not in ("index", "image", "l2-category")}
    cells["index"] = str(_index(row["index"], where))
    cells["image"] = base64.b64encode(image_bytes(row["image"], where)).decode("ascii")
    cells["l2-category"] = _cell(row.get(l2_name)) if l2_name else ""
    return [cells[name] for name in TSV_COLUMNS]


def tsv_text(rows: list[list[str]]) -> str:
    """Tab-separated text with the header, quoted where needed as pandas' to_csv quotes (QUOTE_MINIMAL)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", quotechar='"', quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
    writer.writerow(TSV_COLUMNS)
    writer.writerows(rows)
    return buffer.getvalue()


def _columns(paths: list[Path], task: str, split: str) -> tuple[list[str], str | None]:
    """Columns to read, and the name of the l2-category column (None when the copy has none)."""
    present = present_columns(paths, REQUIRED, split)
    l2_name = next((n for n in L2_NAMES if n in present), None)
    for name in TSV_COLUMNS:
        if (l2_name is None) if name == "l2-category" else name not in present:
            note(f"{task}: the copy has no '{name}' column; its cells are empty")
    wanted = [c for c in TSV_COLUMNS if c in present]
    return wanted + ([l2_name] if l2_name and l2_name not in wanted else []), l2_name


def dev_rows(paths: list[Path], task: str, split: str) -> tuple[list[list[str]], int]:
    """The legacy-layout TSV rows of a dev copy's parquet files (each index once) and its number of questions;
    ``task`` and ``split`` name them in notes and errors."""
    columns, l2_name = _columns(paths, task, split)
    rows: list[list[str]] = []
    seen: set[int] = set()
    for where, row in iter_rows(paths, f"{task} dev rows", columns):
        out = tsv_row(row, l2_name, where)
        index = int(out[0])
        if index in seen:
            raise DataError(f"{where}: index {index} repeats an earlier row (overlapping parquet files?)")
        seen.add(index)
        rows.append(out)
    return rows, len({i % ROUND for i in seen})


def prepare_root(source: Path, root: Path) -> None:
    """Write the MMBench dev TSV (the legacy 20230712 file when the copy holds that set) under ``root``."""
    source, root = Path(source), Path(root)
    paths, is_mmbench_en = _layout(source)
    rows, questions = dev_rows(paths, "mmbench", "the MMBench dev split")
    legacy_set = (len(rows), questions) == (LEGACY_ROWS, LEGACY_QUESTIONS)
    if is_mmbench_en or legacy_set:
        target = LEGACY_FILE
        if not legacy_set:
            note(f"mmbench: {len(rows)} rows / {questions} questions; the 20230712 file has "
                 f"{LEGACY_ROWS} / {LEGACY_QUESTIONS}")
    else:
        target = OTHER_SET_FILE
        note(f"mmbench: the copy holds {len(rows)} rows / {questions} questions, not the 20230712 set "
             f"({LEGACY_ROWS} / {LEGACY_QUESTIONS}); written as {OTHER_SET_FILE}, scores not comparable "
             "with the papers'")
    write_file(root / target, tsv_text(rows))

