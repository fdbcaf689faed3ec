"""Versioned schema migrations of the results store, keyed on ``harness_meta.schema_version``.

A new store is created at the latest version. An older one is upgraded in place, one step at a
time, inside the same transaction that holds the store's migration lock, so several processes
opening one store at once upgrade it exactly once. Each step is a function of a connection and
must work on every dialect the store supports (SQLite, PostgreSQL).

To change the schema: edit the table classes in ``harness/results/store.py``, add a step below that brings
a store of the previous version to the new one, and bump nothing else (``LATEST`` follows).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from sqlalchemy import Connection, MetaData, inspect, text
from sqlalchemy.types import DateTime, Integer, String, Text, TypeEngine

from harness.errors import StoreError

Step = Callable[[Connection], None]

META_TABLE = "harness_meta"
VERSION_KEY = "schema_version"
_PG_LOCK_KEY = 7_301_948_112  # pg_advisory_xact_lock key of the store's migration lock


def _add_column(conn: Connection, table: str, name: str, type_: TypeEngine, default_sql: str | None = None) -> None:
    if name in {c["name"] for c in inspect(conn).get_columns(table)}:
        return
    ddl_type = type_.compile(dialect=conn.dialect)
    default = f" NOT NULL DEFAULT {default_sql}" if default_sql is not None else ""
    conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {name} {ddl_type}{default}"))


_CHECKPOINT_STEP = re.compile(r"checkpoint-(\d+)")


def step_from_result_json(data: dict) -> int | None:
    """The training step a run evaluated, from its results.json (see ``harness.results.store.training_step``)."""
    model = data.get("model") or {}
    details = model.get("details") or {}
    for key in ("step", "global_step", "training_step"):
        value = details.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.isdigit():
            return int(value)
    for text_value in (model.get("path") or "", model.get("spec") or ""):
        found = _CHECKPOINT_STEP.findall(str(text_value))
        if found:
            return int(found[-1])
    return None


def training_run_from_result_json(data: dict) -> str:
    """The training run (its output folder) a checkpoint came from: ``model.details['training_run']``."""
    details = (data.get("model") or {}).get("details") or {}
    value = details.get("training_run")
    return str(value) if value else ""


def _v2_training_step_branch_updated(conn: Connection) -> None:
    """runs gain ``step`` and ``training_run`` (where a checkpoint came from), ``git_branch`` and ``updated``
    (time of the last record); metrics gain ``method`` (how the interval was computed; unknown for old rows)."""
    _add_column(conn, "metrics", "method", Text())
    _add_column(conn, "runs", "training_run", Text(), "''")
    _add_column(conn, "runs", "step", Integer())
    _add_column(conn, "runs", "git_branch", String(256), "''")
    _add_column(conn, "runs", "updated", DateTime())
    rows = conn.execute(text("SELECT id, results_json, created, finished FROM runs")).all()
    for run_id, blob, created, finished in rows:
        try:
            data = json.loads(blob)
        except (TypeError, ValueError):
            data = {}
        branch = (data.get("git") or {}).get("branch") or ""
        conn.execute(
            text("UPDATE runs SET step = :step, training_run = :training_run, git_branch = :branch, "
                 "updated = :updated WHERE id = :id"),
            {"step": step_from_result_json(data), "training_run": training_run_from_result_json(data),
             "branch": branch, "updated": finished or created, "id": run_id},
        )
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_runs_created ON runs (created)"))


def _v3_big_parameter_counts(conn: Connection) -> None:
    """``runs.n_parameters`` becomes 64-bit: a 3.1B model overflows PostgreSQL's 32-bit INTEGER.
    SQLite's INTEGER already holds 64 bits, so only PostgreSQL changes."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("ALTER TABLE runs ALTER COLUMN n_parameters TYPE BIGINT"))


def _v4_protocol_hash(conn: Connection) -> None:
    """runs gain ``protocol_hash``, the content hash of the protocol settings a run used ("" for older runs,
    which recorded only the protocol's name and version)."""
    _add_column(conn, "runs", "protocol_hash", String(64), "''")


def _v5_run_owner(conn: Connection) -> None:
    """runs gain ``pid`` and ``hostname``, the process that records the run, so a later command can tell a
    ``running`` row whose process is gone (NULL and "" for older rows: owner unknown)."""
    _add_column(conn, "runs", "pid", Integer())
    _add_column(conn, "runs", "hostname", String(256), "''")


# version -> the step that brings a store of version - 1 to it
STEPS: dict[int, Step] = {
    2: _v2_training_step_branch_updated, 3: _v3_big_parameter_counts, 4: _v4_protocol_hash, 5: _v5_run_owner,
}
LATEST = max(STEPS)


def read_version(conn: Connection) -> int | None:
    """The store's schema version; None when there is no store (no tables) yet."""
    tables = set(inspect(conn).get_table_names())
    if META_TABLE not in tables:
        return 1 if "runs" in tables else None
    value = conn.execute(text(f"SELECT value FROM {META_TABLE} WHERE key = :k"), {"k": VERSION_KEY}).scalar()
    if value is None:
        return 1 if "runs" in tables else None
    return int(value)


def _write_version(conn: Connection, version: int) -> None:
    updated = conn.execute(
        text(f"UPDATE {META_TABLE} SET value = :v WHERE key = :k"), {"v": str(version), "k": VERSION_KEY}
    )
    if updated.rowcount == 0:
        conn.execute(
            text(f"INSERT INTO {META_TABLE} (key, value) VALUES (:k, :v)"), {"k": VERSION_KEY, "v": str(version)}
        )


def _lock(conn: Connection) -> None:
    """Serialise schema work: PostgreSQL takes an advisory lock; SQLite's BEGIN IMMEDIATE already holds one."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})


def too_new(version: int, where: str) -> StoreError:
    return StoreError(
        f"results store {where} has schema version {version}, newer than this harness's {LATEST}: "
        "upgrade tinyllava-harness"
    )


def upgrade(conn: Connection, metadata: MetaData, where: str) -> int:
    """Create the store at ``LATEST`` or migrate it there; ``conn`` is inside a write transaction.

    Returns the version the store had before (0 for a new store).
    """
    _lock(conn)
    version = read_version(conn)
    if version is None:
        metadata.create_all(conn)
        _write_version(conn, LATEST)
        return 0
    if version > LATEST:
        raise too_new(version, where)
    if version < LATEST:
        metadata.tables[META_TABLE].create(conn, checkfirst=True)
        for target in range(version + 1, LATEST + 1):
            STEPS[target](conn)
            _write_version(conn, target)
    return version


__all__ = [
    "LATEST", "STEPS", "StoreError", "read_version", "step_from_result_json", "too_new",
    "training_run_from_result_json", "upgrade",
]
