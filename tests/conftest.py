"""Test-wide settings: an isolated harness cache (demo data, demo model, file hashes) per session."""

from __future__ import annotations

import os
import shutil
import tempfile

_OWN_CACHE: str | None = None


def pytest_configure(config: object) -> None:
    global _OWN_CACHE
    if not os.environ.get("HARNESS_CACHE_DIR"):
        _OWN_CACHE = tempfile.mkdtemp(prefix="harness-test-cache-")
        os.environ["HARNESS_CACHE_DIR"] = _OWN_CACHE


def pytest_unconfigure(config: object) -> None:
    if _OWN_CACHE:
        shutil.rmtree(_OWN_CACHE, ignore_errors=True)


# store_url: SQLite and PostgreSQL stores; board_store: a store with a few runs for the leaderboard tests
pytest_plugins = ["tests.helpers.stores", "tests.helpers.leaderboard_fixtures"]
