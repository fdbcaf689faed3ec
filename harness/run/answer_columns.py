"""A LLaVA answers file as the columns the default join reads, parsed ahead in a forked child on large files.

``harness score`` needs two things that do not depend on each other: the task's samples and the answers file.
For a large answers file, :func:`read_ahead` forks a child that parses its JSON lines and sends back only the
question ids and texts, while this process loads the samples. On VQAv2 val (214k lines, 2 cores) the child's
parse takes about 0.5 s and reading its columns back 0.05 s, next to the samples' 0.6 s from the sample cache.
Whatever the child cannot do (another format, a line at fault, no ``fork``, other threads running) is done
here afterwards as before, with the same result and the same error messages.
"""

from __future__ import annotations

import os
import pickle
import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.data.readers import iter_jsonl
from harness.errors import DataError
from harness.types import json_kind

READ_AHEAD_BYTES = 1 << 20  # smaller answers files are parsed in line: a fork would cost more than it saves


@dataclass
class AnswerColumns:
    """The lines of a LLaVA answers file, as the default join reads them."""

    first: dict[str, Any]  # the first line (its ``model_id`` names the model)
    question_ids: list[Any]
    texts: list[str]  # a line whose text is no string holds a stand-in here, a key of ``bad``
    bad: dict[str, str] = field(default_factory=dict)  # stand-in -> the error its line's answer becomes
    lines: list[dict[str, Any]] | None = None  # the lines themselves, texts as above (None: not kept by a child)


def llava_columns(path: Path, records: Sequence[tuple[int, dict[str, Any]]], keep_lines: bool = True) -> AnswerColumns:
    """The columns of a LLaVA answers file's (line number, line) records; a line without ``question_id`` or
    ``text`` is a DataError naming it, a text that is no string becomes that line's answer error."""
    bad: dict[str, str] = {}
    question_ids: list[Any] = []
    texts: list[str] = []
    lines: list[dict[str, Any]] = []
    for lineno, rec in records:
        if "question_id" not in rec or "text" not in rec:
            key = "text" if "question_id" in rec else "question_id"
            raise DataError(f"{path}:{lineno}: missing field '{key}' (LLaVA answers need question_id and text)")
        text = rec["text"]
        if not isinstance(text, str):
            text = f"\x00unreadable answer, line {lineno}"
            bad[text] = f"{path}:{lineno}: 'text' is {json_kind(rec['text'])}, not a string"
            rec = {**rec, "text": text}
        question_ids.append(rec["question_id"])
        texts.append(text)
        lines.append(rec)
    return AnswerColumns(records[0][1], question_ids, texts, bad, lines if keep_lines else None)


class _Child:
    """A forked child parsing an answers file; :meth:`columns` collects what it sent."""

    def __init__(self, pid: int, fd: int) -> None:
        self._pid, self._fd = pid, fd
        self.forked = pid != 0  # False: the file is read in line

    def columns(self) -> AnswerColumns | None:
        """The child's columns, or None (not a LLaVA file, a line at fault, a failed child): read in line then."""
        if self._fd < 0:
            return None
        with os.fdopen(self._fd, "rb") as pipe:
            self._fd = -1
            data = pipe.read()
        os.waitpid(self._pid, 0)
        self._pid = 0
        try:
            columns = pickle.loads(data) if data else None
        except Exception:  # a child cut short sends part of a pickle
            return None
        return columns if isinstance(columns, AnswerColumns) else None

    def close(self) -> None:
        """Stop a child whose columns were not collected (the caller failed first) and reap it."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._pid:
            with suppress(ProcessLookupError):
                os.kill(self._pid, signal.SIGKILL)
            os.waitpid(self._pid, 0)
            self._pid = 0


def _send_columns(path: Path, fd: int) -> None:
    """In the child: parse ``path`` and write its columns to ``fd`` (nothing at all when it cannot)."""
    with os.fdopen(fd, "wb") as pipe:
        try:
            records = list(iter_jsonl(path))
            if records and "question_id" in records[0][1]:
                pickle.dump(llava_columns(path, records, keep_lines=False), pipe, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # the parent reads the file again and reports what is wrong with it
            pass


@contextmanager
def read_ahead(path: Path, enabled: bool = True) -> Iterator[_Child]:
    """A child parsing the answers file ``path`` while the block runs, when it is large enough to gain from it
    and this process can fork safely (no other thread); ``.columns()`` inside the block collects the result."""
    child = _Child(0, -1)  # no child: the file is read in line when its columns are needed
    try:
        big = path.is_file() and path.stat().st_size >= READ_AHEAD_BYTES
    except OSError:
        big = False
    if enabled and big and hasattr(os, "fork") and threading.active_count() == 1:
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: parse, send, and leave without running the parent's exit handlers
            try:
                os.close(read_fd)
                _send_columns(path, write_fd)
            finally:
                os._exit(0)
        os.close(write_fd)
        child = _Child(pid, read_fd)
    try:
        yield child
    finally:
        child.close()
