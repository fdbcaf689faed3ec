"""SQLite response cache keyed by (adapter fingerprint, request hash): what makes runs resumable.

Each finished batch is committed at once, so a killed run loses at most the batch in flight.
Only successful responses are cached; errors are retried on the next run.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

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


class ResponseCache:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(str(self.path), timeout=60)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(_SCHEMA)
        self._conn.commit()

    def get_many(self, fingerprint: str, keys: Sequence[str]) -> dict[str, Response]:
        found: dict[str, Response] = {}
        for start in range(0, len(keys), 500):
            chunk = list(keys[start : start + 500])
            marks = ",".join("?" * len(chunk))
            rows = self._conn.execute(
                f"SELECT request_key, response FROM responses WHERE fingerprint = ? AND request_key IN ({marks})",
                [fingerprint, *chunk],
            )
            for key, blob in rows:
                response = Response.from_json(json.loads(blob))
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
            self._conn.executemany("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?)", rows)
            self._conn.commit()

    def close(self) -> None:
        self._conn.close()
