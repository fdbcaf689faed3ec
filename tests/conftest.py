"""Test-wide settings: an isolated harness cache (demo data, demo model, file hashes) per session, and one per
pytest-xdist worker (a worker that adds a task to the demo root must not swap it under another worker's feet)."""

from __future__ import annotations

import os
import shutil
import tempfile

_OWN_CACHE: str | None = None
_MARK = "HARNESS_TEST_OWN_CACHE"  # the cache a test session made (inherited by xdist workers, who make their own)


def pytest_configure(config: object) -> None:
    global _OWN_CACHE
    # One math thread per process (the test process and the harness processes it starts) unless the user chose:
    # pytest-xdist already runs one worker per core, and workers whose torch spread over every core contend
    # (tests/faults, test_cli_run and test_judges: 178 s against 210 s on 2 cores).
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")
    chosen = os.environ.get("HARNESS_CACHE_DIR")
    if chosen and chosen != os.environ.get(_MARK):
        return  # the user's own cache folder
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    _OWN_CACHE = tempfile.mkdtemp(prefix=f"harness-test-cache-{worker}-" if worker else "harness-test-cache-")
    os.environ["HARNESS_CACHE_DIR"] = os.environ[_MARK] = _OWN_CACHE


def pytest_unconfigure(config: object) -> None:
    if _OWN_CACHE:
        shutil.rmtree(_OWN_CACHE, ignore_errors=True)


# store_url: SQLite and PostgreSQL stores; board_store: a store with a few runs for the leaderboard tests
pytest_plugins = ["tests.helpers.stores", "tests.helpers.leaderboard_fixtures"]
