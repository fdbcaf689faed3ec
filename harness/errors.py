"""Errors the CLI turns into one-line messages and a non-zero exit."""

from __future__ import annotations


class HarnessError(Exception):
    """A problem the user can fix (bad flag, missing file, malformed data); exit code 1."""

    exit_code = 1


class UsageError(HarnessError):
    """A bad command line (unknown task or model name, bad flag value); exit code 2."""

    exit_code = 2


class DataError(HarnessError):
    """A data file is missing or malformed; the message names the file (and line)."""


class StoreError(HarnessError):
    """The results store is missing, too old to read, or newer than this harness."""


class ScoringFailed(HarnessError):
    """A task was run or scored but its headline number could not be computed (every judge call failed, no
    answer to score); the run is recorded with status ``failed``."""
