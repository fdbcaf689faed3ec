"""The results store: an index of runs, tasks and metrics for the leaderboard, compare and gate.

SQLite in the results folder by default; any SQLAlchemy URL (PostgreSQL) for a shared board.
A run's rows are replaced in one transaction each time the run records progress.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    create_engine,
    delete,
    event,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from harness.results import RunResult

STORE_FILE = "harness.db"
STORE_SCHEMA_VERSION = 1


class Base(DeclarativeBase):
    pass


class MetaRow(Base):
    __tablename__ = "harness_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256))


class RunRow(Base):
    __tablename__ = "runs"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    created: Mapped[datetime] = mapped_column(DateTime)
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
    n_parameters: Mapped[int | None] = mapped_column(Integer, nullable=True)
    protocol: Mapped[str] = mapped_column(String(64), default="")
    protocol_version: Mapped[str] = mapped_column(String(32), default="")
    data_root: Mapped[str] = mapped_column(Text, default="")
    git_commit: Mapped[str | None] = mapped_column(String(64), nullable=True)
    git_dirty: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    run_dir: Mapped[str] = mapped_column(Text, default="")
    results_json: Mapped[str] = mapped_column(Text)


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


def default_store_url(results_root: Path) -> str:
    return f"sqlite:///{(Path(results_root) / STORE_FILE).resolve()}"


def _parse_time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


class ResultsStore:
    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            self.engine = create_engine(url, connect_args={"timeout": 60})
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            self.engine = create_engine(url, pool_pre_ping=True)
        Base.metadata.create_all(self.engine)
        with Session(self.engine) as session, session.begin():
            if session.get(MetaRow, "schema_version") is None:
                session.add(MetaRow(key="schema_version", value=str(STORE_SCHEMA_VERSION)))

    def record(self, result: RunResult, run_dir: Path | str) -> None:
        """Insert or replace everything the store holds about this run."""
        model = result.model
        run = RunRow(
            id=result.run_id,
            created=_parse_time(result.created),
            finished=_parse_time(result.finished),
            status=result.status,
            command=result.spec.command,
            model_name=model.name if model else "",
            model_spec=model.spec if model else "",
            model_fingerprint=model.fingerprint if model else "",
            is_demo_model=bool(model and model.is_demo),
            is_demo_data=result.data.is_demo,
            llm=model.llm if model else "",
            vision_tower=model.vision_tower if model else "",
            n_parameters=model.n_parameters if model else None,
            protocol=result.protocol.name if result.protocol else "",
            protocol_version=result.protocol.version if result.protocol else "",
            data_root=result.data.root,
            git_commit=result.git.commit,
            git_dirty=result.git.dirty,
            run_dir=str(run_dir),
            results_json=result.model_dump_json(),
        )
        with Session(self.engine) as session, session.begin():
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
                            )
                        )

    def runs(self) -> list[RunRow]:
        with Session(self.engine) as session:
            return list(session.scalars(select(RunRow).order_by(RunRow.created)))

    def get_run(self, run_id: str) -> RunResult | None:
        with Session(self.engine) as session:
            row = session.get(RunRow, run_id)
            return RunResult.model_validate(json.loads(row.results_json)) if row else None

    def headline_metrics(self, run_id: str) -> list[MetricRow]:
        with Session(self.engine) as session:
            stmt = select(MetricRow).where(MetricRow.run_id == run_id, MetricRow.is_headline.is_(True))
            return list(session.scalars(stmt))

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
