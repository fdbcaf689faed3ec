"""What the prepare modules share to read a Hugging Face parquet copy: its files, its columns, its row count.

Notes go to ``harness.data.prepare.note`` (the limitations of the sources record), errors are DataErrors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.data.prepare import find_files, note, parquet_columns
from harness.errors import DataError


def present_columns(paths: Sequence[Path], required: Sequence[str], owner: str) -> set[str]:
    """The columns of the copy (those of its first file); a required one it lacks is a DataError naming
    the file and ``owner`` (what the columns belong to, e.g. ``lmms-lab/textvqa``)."""
    present = set(parquet_columns(paths[0]))
    lacking = [c for c in required if c not in present]
    if lacking:
        raise DataError(f"{paths[0]}: missing column(s) {', '.join(lacking)} of {owner}")
    return present


@dataclass(frozen=True)
class ParquetCopy:
    """One set of parquet files in a copy, and the row count of the official release it stands for."""

    task: str  # the task the notes name
    pattern: str  # glob of the files, relative to the snapshot
    name: str  # what they hold, e.g. "TextVQA validation" (an error names "<name> parquet files")
    expected: int  # rows in the official release
    official: str  # how a note names the official release, e.g. "val file"
    noun: str = "questions"  # what a row is

    def files(self, source: Path) -> list[Path]:
        """The files under ``source`` (sorted); none is a DataError."""
        return find_files(source, (self.pattern,), f"{self.name} parquet files")

    def check_count(self, found: int) -> None:
        """A note when the copy holds another number of rows than the official release."""
        if found != self.expected:
            note(f"{self.task}: {found} {self.noun}; the official {self.official} has {self.expected}")
