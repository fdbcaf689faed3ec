"""The results store: an index of runs, tasks and metrics for the leaderboard, compare and gate.

SQLite in the results folder by default; any SQLAlchemy URL (PostgreSQL) for a shared board, with
the same schema and the migrations of ``harness/results/migrations.py``. A run's rows are replaced in one
transaction each time the run records progress; several processes may record at once (SQLite:
WAL and ``BEGIN IMMEDIATE`` with a busy timeout; PostgreSQL: row-level, one run per transaction).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import (
    BigInteger,
    Boolean,
    Connection,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    create_engine,
    delete,
    event,
    func,
    select,
)
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from harness.results.migrations import (
    LATEST,
    StoreError,
    read_version,
    step_from_result_json,
    too_new,
    training_run_from_result_json,
    upgrade,
)
from harness.results.identity import RunIdentity
from harness.results.schema import RunResult

STORE_FILE = "harness.db"
STORE_SCHEMA_VERSION = LATEST

__all__ = ["STORE_FILE", "STORE_SCHEMA_VERSION", "ResultsStore", "StoreError", "default_store_url", "training_run",
           "training_step"]


class Base(DeclarativeBase):
    pass


class MetaRow(Base):
    __tablename__ = "harness_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))


class RunRow(Base):
    __tablename__ = "runs"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    created: Mapped[datetime] = mapped_column(DateTime, index=True)
    finished: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    command: Mapped[str] = mapped_column(String(16))
    model_name: Mapped[str] = mapped_column(String(256), default="")
    model_spec: Mapped[str] = mapped_column(Text, default="")
    model_fingerprint: Mapped[str] = mapped_column(String(128), default="")
    is_demo_model: Mapped[bool] = mapped_column(Boolean, default=False)
    is_demo_data: Mapped[bool] = mapped_column(Boolean, default=False)
    llm: Mapped[str] = mapped_column(String(64), default="")
    vision_tower: Mapped[str] = mapped_column(String(64), default="")
    n_parameters: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # 64-bit since schema 3
    protocol: Mapped[str] = mapped_column(String(64), default="")
    protocol_version: Mapped[str] = mapped_column(String(32), default="")
    data_root: Mapped[str] = mapped_column(Text, default="")
    git_commit: Mapped[str | None] = mapped_column(String(64), nullable=True)
    git_dirty: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    run_dir: Mapped[str] = mapped_column(Text, default="")
    results_json: Mapped[str] = mapped_column(Text)
    # schema version 2
    step: Mapped[int | None] = mapped_column(Integer, nullable=True)  # training step of the checkpoint
    training_run: Mapped[str] = mapped_column(Text, default="")  # the training output folder it came from
    git_branch: Mapped[str] = mapped_column(String(256), default="")
    updated: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)  # when the run last recorded
    # schema version 4
    protocol_hash: Mapped[str] = mapped_column(String(64), default="")  # content hash of the protocol's settings


class TaskRow(Base):
    __tablename__ = "task_results"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    task: Mapped[str] = mapped_column(String(64))
    task_version: Mapped[str] = mapped_column(String(32))
    n_samples: Mapped[int] = mapped_column(Integer)
    n_errors: Mapped[int] = mapped_column(Integer)
    n_parse_failures: Mapped[int] = mapped_column(Integer)
    n_missing: Mapped[int] = mapped_column(Integer)
    headline_metric: Mapped[str] = mapped_column(String(64), default="")
    headline_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    seconds: Mapped[float] = mapped_column(Float, default=0.0)
    samples_per_second: Mapped[float | None] = mapped_column(Float, nullable=True)
    samples_path: Mapped[str] = mapped_column(Text, default="")


class MetricRow(Base):
    __tablename__ = "metrics"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    task: Mapped[str] = mapped_column(String(64))
    breakdown: Mapped[str] = mapped_column(String(64), default="")  # "" for top-level metrics
    name: Mapped[str] = mapped_column(String(128))
    value: Mapped[float] = mapped_column(Float)
    stderr: Mapped[float | None] = mapped_column(Float, nullable=True)
    ci_low: Mapped[float | None] = mapped_column(Float, nullable=True)
    ci_high: Mapped[float | None] = mapped_column(Float, nullable=True)
    n: Mapped[int] = mapped_column(Integer, default=0)
    is_headline: Mapped[bool] = mapped_column(Boolean, default=False)
    method: Mapped[str | None] = mapped_column(Text, nullable=True)  # how stderr / interval were computed


def default_store_url(results_root: Path) -> str:
    return f"sqlite:///{(Path(results_root) / STORE_FILE).resolve()}"


def _parse_time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def training_step(result: RunResult) -> int | None:
    """The training step of the evaluated checkpoint: ``model.details`` ``step`` / ``global_step`` /
    ``training_step`` (the training callback's), else N of a ``checkpoint-N`` model path; None otherwise."""
    return step_from_result_json(json.loads(result.model_dump_json(include={"model"})))


def training_run(result: RunResult) -> str:
    """The training run a checkpoint came from (``model.details['training_run']``), else ""."""
    return training_run_from_result_json(json.loads(result.model_dump_json(include={"model"})))


def engine_url(url: str) -> str:
    """``postgresql://`` means psycopg 3 when psycopg2 (SQLAlchemy's default driver) is not installed."""
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        try:
            import psycopg2  # noqa: F401
        except ImportError:
            return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    return url


def display_url(url: str) -> str:
    """The URL with its password masked, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # a malformed URL is shown as given
        return url


def sqlite_path(url: str) -> Path | None:
    """The database file of a ``sqlite:///`` URL (None for other URLs and in-memory databases)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def _sqlite_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    dbapi_connection.isolation_level = None  # SQLAlchemy's "begin" hook below issues BEGIN itself
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    """Writers take SQLite's write lock when they begin (waiting up to the busy timeout), never mid-way."""
    mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


def make_engine(url: str) -> Engine:
    """An engine for the store at ``url``; SQLite gets WAL, a 60 s busy timeout and explicit BEGINs."""
    url = engine_url(url)
    path = sqlite_path(url)
    if path is None:
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"timeout": 60})
    event.listen(engine, "connect", _sqlite_connect)
    event.listen(engine, "begin", _sqlite_begin)
    return engine


class ResultsStore:
    """Runs, task results and metrics in any SQLAlchemy database.

    ``readonly``: never create or migrate (the leaderboard); a missing or older store raises
    StoreError naming the command that creates or upgrades it.
    """

    def __init__(self, url: str, *, readonly: bool = False) -> None:
        self.url = url
        self.where = display_url(url)
        path = sqlite_path(engine_url(url))
        if path is not None:
            if readonly and not path.is_file():
                raise StoreError(f"no results store at {path}: record a run first (python -m harness run ...) "
                                 "or pass --store URL")
            path.parent.mkdir(parents=True, exist_ok=True)
        self.engine = make_engine(url)
        self._writer = self.engine.execution_options(sqlite_begin="IMMEDIATE")
        if readonly:
            self._check_readable()
        else:
            self._prepare()

    def _prepare(self) -> None:
        with self.engine.connect() as conn:
            current = read_version(conn)
            conn.rollback()
        if current == LATEST:
            return
        with self._writer.begin() as conn:
            upgrade(conn, Base.metadata, self.where)

    def _check_readable(self) -> None:
        with self.engine.connect() as conn:
            version = read_version(conn)
        if version is None:
            raise StoreError(f"{self.where} holds no results store (no harness tables)")
        if version > LATEST:
            raise too_new(version, self.where)
        if version < LATEST:
            raise StoreError(
                f"results store {self.where} has schema version {version}; this harness reads {LATEST}: "
                "upgrade it in place with `python -m harness leaderboard --store URL` (or any run that records into it)"
            )

    @contextmanager
    def _write(self) -> Iterator[Session]:
        with Session(self._writer) as session, session.begin():
            yield session

    def schema_version(self) -> int | None:
        with self.engine.connect() as conn:
            return read_version(conn)

    def revision(self) -> tuple[int, str]:
        """Changes whenever a run is recorded: (number of runs, time of the last record). A cache key."""
        with Session(self.engine) as session:
            count, last = session.execute(select(func.count(RunRow.id), func.max(RunRow.updated))).one()
        return int(count), str(last)

    def record(self, result: RunResult, run_dir: Path | str) -> None:
        """Insert or replace everything the store holds about this run."""
        model, who = result.model, RunIdentity.of(result)
        run = RunRow(
            id=result.run_id,
            created=_parse_time(result.created),
            finished=_parse_time(result.finished),
            status=result.status,
            command=who.command,
            model_name=who.model,
            model_spec=who.model_spec,
            model_fingerprint=who.model_fingerprint,
            is_demo_model=who.is_demo_model,
            is_demo_data=who.is_demo_data,
            llm=model.llm if model else "",
            vision_tower=model.vision_tower if model else "",
            n_parameters=model.n_parameters if model else None,
            protocol=who.protocol,
            protocol_version=who.protocol_version,
            protocol_hash=who.protocol_hash,
            data_root=result.data.root,
            git_commit=who.git_commit,
            git_dirty=who.git_dirty,
            run_dir=str(Path(run_dir).resolve()),
            results_json=result.model_dump_json(),
            step=training_step(result),
            training_run=training_run(result),
            git_branch=result.git.branch or "",
            updated=_now(),
        )
        with self._write() as session:
            session.execute(delete(MetricRow).where(MetricRow.run_id == result.run_id))
            session.execute(delete(TaskRow).where(TaskRow.run_id == result.run_id))
            session.merge(run)
            session.flush()  # the run row must exist before rows that reference it
            for name, rec in result.tasks.items():
                headline = rec.headline[0] if rec.headline else ""
                head_metric = rec.metrics.get(headline)
                session.add(
                    TaskRow(
                        run_id=result.run_id,
                        task=name,
                        task_version=rec.version,
                        n_samples=rec.n_samples,
                        n_errors=rec.n_errors,
                        n_parse_failures=rec.n_parse_failures,
                        n_missing=rec.n_missing,
                        headline_metric=headline,
                        headline_value=head_metric.value if head_metric else None,
                        seconds=rec.timing.seconds,
                        samples_per_second=rec.timing.samples_per_second,
                        samples_path=rec.samples_file,
                    )
                )
                groups = [("", rec.metrics), *rec.breakdowns.items()]
                for group, metrics in groups:
                    for metric_name, m in metrics.items():
                        session.add(
                            MetricRow(
                                run_id=result.run_id,
                                task=name,
                                breakdown=group,
                                name=metric_name,
                                value=m.value,
                                stderr=m.stderr,
                                ci_low=m.ci_low,
                                ci_high=m.ci_high,
                                n=m.n,
                                is_headline=(group == "" and metric_name in rec.headline),
                                method=m.method or None,
                            )
                        )

    def runs(self) -> list[RunRow]:
        with Session(self.engine) as session:
            return list(session.scalars(select(RunRow).order_by(RunRow.created, RunRow.id)))

    def get_run(self, run_id: str) -> RunResult | None:
        with Session(self.engine) as session:
            row = session.get(RunRow, run_id)
            return RunResult.model_validate(json.loads(row.results_json)) if row else None

    def run_row(self, run_id: str) -> RunRow | None:
        with Session(self.engine) as session:
            return session.get(RunRow, run_id)

    def headline_metrics(self, run_id: str) -> list[MetricRow]:
        with Session(self.engine) as session:
            stmt = select(MetricRow).where(MetricRow.run_id == run_id, MetricRow.is_headline.is_(True))
            return list(session.scalars(stmt.order_by(MetricRow.id)))

    def task_rows(self, run_id: str) -> list[TaskRow]:
        with Session(self.engine) as session:
            return list(session.scalars(select(TaskRow).where(TaskRow.run_id == run_id).order_by(TaskRow.id)))

    def close(self) -> None:
        self.engine.dispose()
