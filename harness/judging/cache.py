"""Judge replies cached in the run's ``cache.sqlite`` (table ``judge_replies``), so re-scoring replays
the same grades.

Key: (judge model requested, endpoint identity, sha256 of the messages, temperature, max_tokens, run
index, attempt). Run and attempt are part of the key: run 1 of a prompt, or the re-ask of a prompt whose
reply could not be read, is a call of its own, not an earlier reply replayed. Only successful replies are
stored; a failed call is tried again next time. A cache written before ``attempt`` existed is upgraded in
place (its rows become attempt 0). A damaged file is a one-line error naming it; an unreadable reply is a miss.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from harness.judging.contract import JudgeReply
from harness.run.response_cache import cache_errors

_SCHEMA = """
CREATE TABLE IF NOT EXISTS judge_replies (
    model TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    prompt_hash TEXT NOT NULL,
    temperature REAL NOT NULL,
    max_tokens INTEGER NOT NULL,
    run INTEGER NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 0,
    reply TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (model, endpoint, prompt_hash, temperature, max_tokens, run, attempt)
)
"""
_COLUMNS = "model, endpoint, prompt_hash, temperature, max_tokens, run, attempt, reply, created"
_STORED = ("text", "model", "prompt_hash", "settings", "seconds")


@dataclass(frozen=True)
class JudgeKey:
    model: str
    endpoint: str  # the base URL without trailing slash, or a stable identity (e.g. "demo:<fingerprint>")
    prompt_hash: str
    temperature: float
    max_tokens: int
    run: int
    attempt: int = 0

    def row(self) -> tuple[str, str, str, float, int, int, int]:
        return (self.model, self.endpoint, self.prompt_hash, self.temperature, self.max_tokens, self.run, self.attempt)


class JudgeCache:
    """Thread-safe: judge calls run in a thread pool."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(self.path), timeout=60, check_same_thread=False)
        try:
            with cache_errors(self.path):
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._upgrade()
                self._conn.execute(_SCHEMA)
                self._conn.commit()
        except BaseException:
            self._conn.close()
            raise

    def _upgrade(self) -> None:
        """A table without ``attempt`` (older caches) is rebuilt with it; its rows become attempt 0."""
        columns = [row[1] for row in self._conn.execute("PRAGMA table_info(judge_replies)")]
        if not columns or "attempt" in columns:
            return
        with self._conn:
            self._conn.execute("ALTER TABLE judge_replies RENAME TO judge_replies_before_attempt")
            self._conn.execute(_SCHEMA)
            self._conn.execute(
                f"INSERT INTO judge_replies ({_COLUMNS}) SELECT model, endpoint, prompt_hash, temperature,"
                " max_tokens, run, 0, reply, created FROM judge_replies_before_attempt"
            )
            self._conn.execute("DROP TABLE judge_replies_before_attempt")

    def get(self, key: JudgeKey) -> JudgeReply | None:
        with self._lock, cache_errors(self.path):
            row = self._conn.execute(
                "SELECT reply FROM judge_replies WHERE model = ? AND endpoint = ? AND prompt_hash = ? "
                "AND temperature = ? AND max_tokens = ? AND run = ? AND attempt = ?",
                key.row(),
            ).fetchone()
        if row is None:
            return None
        try:
            data = json.loads(row[0])
            return JudgeReply(**{k: data[k] for k in _STORED if k in data}, cached=True)
        except (TypeError, ValueError, RecursionError):
            return None  # an unreadable entry: ask the judge again

    def put(self, key: JudgeKey, reply: JudgeReply) -> None:
        if reply.error is not None:
            return
        blob = json.dumps({k: getattr(reply, k) for k in _STORED}, ensure_ascii=False)
        with self._lock, cache_errors(self.path):
            self._conn.execute(
                f"INSERT OR REPLACE INTO judge_replies ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*key.row(), blob, time.time()),
            )
            self._conn.commit()

    def close(self) -> None:
        with self._lock:
            self._conn.close()
