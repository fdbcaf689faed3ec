"""One run's per-sample log (``samples/<task>.jsonl``) for the browser: status, texts, images.

Everything here is read as data and handed to the pages as plain strings; nothing is rendered
as HTML or markdown.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

from harness.data.readers import iter_jsonl
from harness.errors import HarnessError
from harness.results.schema import RESULTS_FILE
from harness.results.store import sqlite_path

STATUSES = ("correct", "wrong", "error", "parse failure", "scored", "unscored")
_JUDGE_KEYS = ("content", "reviews", "judge_reply", "judge_replies", "replies")

Record = dict[str, Any]


def resolve_run_dir(run_dir: str, run_id: str, store_url: str) -> Path | None:
    """The run's folder: as recorded, else next to a SQLite store (results moved as a whole)."""
    candidates = [Path(run_dir)] if run_dir else []
    db = sqlite_path(store_url) if store_url.startswith("sqlite") else None
    if db is not None:
        candidates.append(db.parent / run_id)
    for path in candidates:
        if (path / RESULTS_FILE).is_file() or (path / "samples").is_dir():
            return path
    return None


def read_samples(path: Path) -> list[Record]:
    """The lines of one samples log (a malformed line is an error naming file and line)."""
    return [rec for _, rec in iter_jsonl(path)]


def status(rec: Record) -> str:
    """correct / wrong / error (no answer: the model or image failed) / parse failure / scored / unscored."""
    response = rec.get("response") or {}
    if response.get("error"):
        return "error"
    if rec.get("parse_failed"):
        return "parse failure"
    if rec.get("correct") is True:
        return "correct"
    if rec.get("correct") is False:
        return "wrong"
    return "scored" if rec.get("score") is not None else "unscored"


def answer(rec: Record) -> str:
    return str((rec.get("response") or {}).get("text") or "")


def error(rec: Record) -> str:
    return str((rec.get("response") or {}).get("error") or "")


def prompt(rec: Record) -> str:
    """The prompt the model saw (the protocol's), else the question as the benchmark gives it."""
    request = rec.get("request") or {}
    return str(request.get("prompt") or rec.get("question") or "")


def judge_replies(rec: Record) -> list[str]:
    """The judge's raw replies recorded for this sample (judged tasks, MMBench's choice extractor)."""
    found: list[str] = []
    detail = rec.get("detail") or {}
    for key in _JUDGE_KEYS:
        value = detail.get(key)
        if isinstance(value, str) and value:
            found.append(value)
        elif isinstance(value, list):
            found += [str(v) for v in value if v]
    return found


def text_of(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else repr(value) if not isinstance(value, dict | list) else _json(value)


def _json(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False, default=str)


def samples_frame(records: Sequence[Record]) -> pd.DataFrame:
    """A summary row per sample: id, status, score, parsed answer, the start of the answer."""
    return pd.DataFrame(
        [{
            "id": str(r.get("id", "")), "status": status(r), "score": r.get("score"),
            "parsed": text_of(r.get("parsed")), "answer": answer(r)[:120], "target": text_of(r.get("target"))[:120],
        } for r in records],
        columns=["id", "status", "score", "parsed", "answer", "target"],
    )


def select(records: Sequence[Record], statuses: Iterable[str] = (), text: str = "") -> list[Record]:
    """Records with one of ``statuses`` (all when empty) whose id, prompt or answer contains ``text``."""
    wanted = set(statuses)
    needle = text.lower()
    out = []
    for rec in records:
        if wanted and status(rec) not in wanted:
            continue
        if needle and not any(needle in s.lower() for s in (str(rec.get("id", "")), prompt(rec), answer(rec))):
            continue
        out.append(rec)
    return out


# --- images ---------------------------------------------------------------------------------------


def image_refs(rec: Record) -> list[str]:
    return [str(x) for x in ((rec.get("request") or {}).get("images") or [])]


def sample_images(rec: Record, task: str, data_root: str) -> list[str | bytes]:
    """The sample's images as file paths or bytes (embedded images are read back from the data root)."""
    out: list[str | bytes] = []
    for i, ref in enumerate(image_refs(rec)):
        if ref.startswith("<") and ref.endswith("embedded bytes>"):
            data = _embedded_images(task, data_root).get(str(rec.get("id")), ())
            if i < len(data):
                out.append(data[i])
            continue
        path = Path(ref)
        if not path.is_absolute() and data_root:
            path = Path(data_root) / path
        if path.is_file():
            out.append(str(path))
    return out


@lru_cache(maxsize=4)
def _embedded_images(task: str, data_root: str) -> dict[str, tuple[bytes, ...]]:
    """Images a task keeps inside its data files (MMBench's TSV), by sample id; empty when unreadable."""
    try:
        from harness.registry import get_task

        samples = get_task(task).load(Path(data_root))
    except (HarnessError, OSError, ValueError):
        return {}
    return {s.id: tuple(im.data for im in s.images if im.data) for s in samples}
