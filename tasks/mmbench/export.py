"""The MMBench submission file of LLaVA's ``scripts/convert_mmbench_for_submission.py``.

The converter reads the TSV with pandas, drops ``hint, category, source, image, comment,
l2-category``, inserts an empty ``prediction`` column at position 6 (after ``D``), fills it row by
row from the answers JSONL (matching ``index`` to ``question_id``; a later answer for the same row
replaces an earlier one) and writes an xlsx with openpyxl, one sheet, no index column. For the dev
file the columns are ``index, question, A, B, C, D, prediction, answer, split``; every TSV row is
written, unanswered ones with an empty prediction.

Cell values follow what pandas writes: ``index`` as an integer, NA cells empty, everything else as
text. Control characters that xlsx cannot hold (openpyxl would refuse the file) are removed.

Every text cell is stored as a string, never a formula: openpyxl makes a formula of any text that
starts with ``=``, so a model answering ``=HYPERLINK(...)`` would otherwise put a live formula in the
file. Text that a spreadsheet would read as a formula when edited (``= + - @``, also after leading
tab/CR) also gets Excel's quote-prefix flag, the stored form of a typed leading ``'``. The cell values
themselves are unchanged, so the evaluator reads exactly the predictions, options and answers given.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from harness.errors import HarnessError
from tasks.mmbench.tsv import read_table

DROPPED = ("hint", "category", "source", "image", "comment", "l2-category")
PREDICTION_POSITION = 6
SHEET = "Sheet1"
FORMULA_PREFIXES = ("=", "+", "-", "@")


def submission_columns(header: list[str]) -> list[str]:
    """The converter's columns: the TSV header minus ``DROPPED``, ``prediction`` inserted at position 6."""
    kept = [c for c in header if c not in DROPPED]
    kept.insert(min(PREDICTION_POSITION, len(kept)), "prediction")
    return kept


def looks_like_formula(text: str) -> bool:
    """Whether a spreadsheet could read ``text`` as a formula (OWASP's CSV-injection prefixes)."""
    return text.lstrip("\t\r").startswith(FORMULA_PREFIXES)


def write_submission(tsv: Path, predictions: Mapping[int, str], output: Path) -> Path:
    """Write the xlsx for ``predictions`` (TSV index -> answer text) over every row of ``tsv``."""
    try:
        from openpyxl import Workbook
        from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
        from openpyxl.styles import Font
    except ImportError as exc:  # pragma: no cover - openpyxl is a declared extra
        raise HarnessError("writing the MMBench submission needs openpyxl (pip install openpyxl)") from exc

    table = read_table(tsv)
    columns = submission_columns(table.header)
    book = Workbook()
    sheet = book.active
    sheet.title = SHEET
    sheet.append(columns)
    for cell in sheet[1]:
        cell.font = Font(bold=True)

    def clean(value: str | None) -> str | None:
        return None if value is None else ILLEGAL_CHARACTERS_RE.sub("", value)

    for row in table.rows:
        values: list[object] = []
        for column in columns:
            if column == "index":
                values.append(row.index)
            elif column == "prediction":
                values.append(clean(predictions.get(row.index)))
            else:
                values.append(clean(row.get(column)))
        sheet.append(values)
        for cell in sheet[sheet.max_row]:
            if isinstance(cell.value, str):
                cell.data_type = "s"  # as text, even when it starts with "="
                if looks_like_formula(cell.value):
                    cell.quotePrefix = True
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    book.save(output)
    return output


def read_submission(path: Path) -> list[list[object]]:
    """The cell values of a submission xlsx, header first (for checks and round trips)."""
    from openpyxl import load_workbook

    book = load_workbook(path, read_only=True)
    try:
        return [list(row) for row in book.worksheets[0].iter_rows(values_only=True)]
    finally:
        book.close()
