"""Every adapter test module gets a fresh harness cache (checkpoint fingerprints, demo files) of its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.module_fixtures import isolated_cache


@pytest.fixture(scope="module", autouse=True)
def cache_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield from isolated_cache(tmp_path_factory)
