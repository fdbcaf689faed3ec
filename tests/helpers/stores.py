"""Results stores for tests: a SQLite file, and a fresh database on the PostgreSQL of $HARNESS_TEST_PG_URL.

CI starts PostgreSQL and exports the URL (``.ci/postgres``); without it the PostgreSQL cases skip.
Each PostgreSQL test gets its own database, dropped afterwards.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from harness.results.store import engine_url

PG_ENV = "HARNESS_TEST_PG_URL"
PG_SKIP = f'{PG_ENV} is not set: these PostgreSQL cases need a server (export {PG_ENV}="$(.ci/postgres)", as CI does)'


@contextmanager
def fresh_pg_database(base_url: str) -> Iterator[str]:
    """A new, empty database on the server of ``base_url`` (whose role may create databases)."""
    url = make_url(engine_url(base_url))
    name = f"harness_test_{secrets.token_hex(5)}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def new_store_url(kind: str, folder: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'harness.db'}"
        return
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(PG_SKIP)
    with fresh_pg_database(base) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty results store location: a SQLite file, then a PostgreSQL database."""
    yield from new_store_url(request.param, tmp_path)
