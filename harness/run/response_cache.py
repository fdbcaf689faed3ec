"""SQLite response cache keyed by (adapter fingerprint, request hash): what makes runs resumable.

Each finished batch is committed at once, so a killed run loses at most the batch in flight.
Only successful responses are cached; errors are retried on the next run.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from harness.errors import DataError
from harness.types import Response

CACHE_FILE = "cache.sqlite"  # in the results root; judge replies have their own table in it

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    fingerprint TEXT NOT NULL,
    request_key TEXT NOT NULL,
    response TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (fingerprint, request_key)
)
"""


_SQLITE_CORRUPT, _SQLITE_NOTADB, _SQLITE_IOERR_SHORT_READ = 11, 26, 522


def sqlite_damaged(exc: BaseException) -> bool:
    """Whether a sqlite3 error says the file is not, or no longer, a readable database (garbage bytes,
    truncation); a busy or locked database is not damaged."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB) or code == _SQLITE_IOERR_SHORT_READ
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text


@contextmanager
def cache_errors(path: Path) -> Iterator[None]:
    """A damaged cache file becomes a one-line DataError naming it and the way out."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        if not sqlite_damaged(exc):
            raise
        raise DataError(f"cache {path} is damaged ({exc}): move it aside (it is only a cache) and run again, "
                        f"e.g. mv {path} {path}.corrupt") from None  # fmt: skip


class ResponseCache:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(self.path), timeout=60)
        try:
            with cache_errors(self.path):
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=NORMAL")
                self._conn.execute(_SCHEMA)
                self._conn.commit()
        except BaseException:
            self._conn.close()
            raise

    def get_many(self, fingerprint: str, keys: Sequence[str]) -> dict[str, Response]:
        """The cached responses among ``keys``; an unreadable entry counts as not cached."""
        found: dict[str, Response] = {}
        for start in range(0, len(keys), 500):
            chunk = list(keys[start : start + 500])
            marks = ",".join("?" * len(chunk))
            with cache_errors(self.path):
                rows = self._conn.execute(
                    f"SELECT request_key, response FROM responses WHERE fingerprint = ? AND request_key IN ({marks})",
                    [fingerprint, *chunk],
                ).fetchall()
            for key, blob in rows:
                try:
                    response = Response.from_json(json.loads(blob))
                except (TypeError, ValueError, KeyError, RecursionError):
                    continue
                response.cached = True
                found[key] = response
        return found

    def put_many(self, fingerprint: str, items: Iterable[tuple[str, Response]]) -> None:
        now = time.time()
        rows = [
            (fingerprint, key, json.dumps(resp.to_json(), ensure_ascii=False), now)
            for key, resp in items
            if resp.error is None
        ]
        if rows:
            with cache_errors(self.path):
                self._conn.executemany("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?)", rows)
                self._conn.commit()

    def close(self) -> None:
        self._conn.close()
