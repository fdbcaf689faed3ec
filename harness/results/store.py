"""The results store: an index of runs, tasks and metrics for the leaderboard, compare and gate.

SQLite in the results folder by default; any SQLAlchemy URL (PostgreSQL) for a shared board, with
the same schema and the migrations of ``harness/results/migrations.py``. A run's rows are replaced in one
transaction each time the run records progress; several processes may record at once (SQLite:
WAL and ``BEGIN IMMEDIATE`` with a busy timeout; PostgreSQL: row-level, one run per transaction).

A damaged SQLite file is a one-line StoreError naming it and ``harness store rebuild``. Each row keeps the
pid and host of the process recording it, so ``running`` rows of dead processes can be settled.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

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
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, defer, mapped_column

from harness.errors import HarnessError
from harness.results.identity import RunIdentity
from harness.results.migrations import (
    LATEST,
    StoreError,
    read_version,
    step_from_result_json,
    too_new,
    training_run_from_result_json,
    upgrade,
)
from harness.results.schema import RESULTS_FILE, RunResult, load_results
from harness.run.response_cache import sqlite_damaged

STORE_FILE = "harness.db"
STORE_SCHEMA_VERSION = LATEST

__all__ = ["STORE_FILE", "STORE_SCHEMA_VERSION", "ResultsStore", "StaleRun", "StoreError", "default_store_url",
           "sqlite_damaged", "training_run", "training_step"]


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
    # schema version 5: the process that records the run (NULL / "" when unknown: older rows, rebuilt rows)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    hostname: Mapped[str] = mapped_column(String(256), default="")


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


@dataclass(frozen=True)
class StaleRun:
    """A ``running`` row whose process is gone."""

    id: str
    run_dir: str
    reason: str
    seen: datetime  # the row's last record (UTC); it is changed only if it still says this


def this_host() -> str:
    """The name a row's ``hostname`` holds for this machine."""
    return socket.gethostname()


def _process_start(pid: int) -> tuple[datetime, str] | None:
    """Start time (UTC) and state letter of a process, from Linux's /proc; None elsewhere."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(line for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime "))
        fields = stat[stat.rindex(")") + 2 :].split()  # from the third field (state) on
        seconds = int(boot.split()[1]) + int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: start time
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None), fields[0]


def process_alive(pid: int, seen: datetime | None = None) -> bool:
    """Whether process ``pid`` of this host runs and is the one that recorded at ``seen``: a process
    started after that got the number of a dead one. Unknown (not Linux, no permission) counts as alive."""
    if pid <= 0:
        return False
    if os.name == "nt":  # os.kill(pid, 0) would send CTRL_C_EVENT there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: another user's process, alive
        pass
    started = _process_start(pid)
    if started is None:
        return True
    start, state = started
    if state in ("Z", "X"):  # exited, not yet reaped
        return False
    return seen is None or start <= seen + timedelta(seconds=2)  # /proc's boot time is whole seconds


def _age(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


def _one_line(exc: BaseException) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):  # pydantic's ValidationError: its first problem
        first = errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        return f"field '{where}': {first['msg']}"
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _stored_result(row: RunRow) -> RunResult:
    return RunResult.model_validate(json.loads(row.results_json))


def write_results_file(run_dir: Path, result: RunResult) -> None:
    """Rewrite a run directory's results.json atomically."""
    path = run_dir / RESULTS_FILE
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(result.model_dump_json(indent=2), encoding="utf-8")
    os.replace(tmp, path)


def _closed_result(row: RunRow, note: str, seen: datetime) -> RunResult | None:
    """The final result of a stale row: its run directory's results.json when that has moved past
    ``running``; else the run marked ``interrupted`` (the results.json rewritten so). None: unreadable."""
    finished = seen.replace(tzinfo=UTC).isoformat(timespec="seconds")
    on_disk = None
    if row.run_dir:
        try:
            on_disk = load_results(Path(row.run_dir))
        except (HarnessError, OSError):
            on_disk = None
    if on_disk is not None and on_disk.run_id == row.id:
        if on_disk.status != "running":
            return on_disk
        on_disk.status, on_disk.finished = "interrupted", finished
        on_disk.errors.append(note)
        with suppress(OSError):  # a read-only run directory: the store still says what happened
            write_results_file(Path(row.run_dir), on_disk)
        return on_disk
    try:
        result = _stored_result(row)
    except (TypeError, ValueError, RecursionError):
        return None
    result.status, result.finished = "interrupted", finished
    result.errors.append(note)
    return result


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


def rebuild_command(path: Path) -> str:
    """The command that rebuilds the SQLite store at ``path`` from the run directories beside it."""
    if path.name == STORE_FILE:
        return f"python -m harness store rebuild --output-dir {path.parent}"
    return f"python -m harness store rebuild --store sqlite:///{path} --runs {path.parent}"


def damaged_store(path: Path, exc: BaseException) -> StoreError:
    return StoreError(
        f"results store {path} is damaged ({exc}): rebuild it from the run directories with "
        f"`{rebuild_command(path)}` (the damaged file is moved aside)"
    )


def _raise_if_damaged(path: Path) -> Callable[[ExceptionContext], None]:
    """A ``handle_error`` hook: a damaged SQLite file becomes a one-line StoreError naming it."""

    def handle(context: ExceptionContext) -> None:
        if sqlite_damaged(context.original_exception):
            raise damaged_store(path, context.original_exception) from context.original_exception

    return handle


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
    event.listen(engine, "handle_error", _raise_if_damaged(path))
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

    def record(
        self, result: RunResult, run_dir: Path | str, *, owned: bool = True, updated: datetime | None = None
    ) -> None:
        """Insert or replace everything the store holds about this run.

        ``owned``: this process records the run (its pid and host are kept, so a later command can tell
        whether a ``running`` row's process is gone); False (``store rebuild``) keeps the row's owner.
        ``updated``: when the run last recorded (default: now).
        """
        with self._write() as session:
            self._record(session, result, run_dir, owned=owned, updated=updated)

    def _record(
        self, session: Session, result: RunResult, run_dir: Path | str, *, owned: bool, updated: datetime | None
    ) -> None:
        model, who = result.model, RunIdentity.of(result)
        owner: dict[str, Any] = {"pid": os.getpid(), "hostname": this_host()} if owned else {}
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
            run_dir=str(Path(run_dir).resolve()) if str(run_dir) else "",
            results_json=result.model_dump_json(),
            step=training_step(result),
            training_run=training_run(result),
            git_branch=result.git.branch or "",
            updated=updated or _now(),
            **owner,
        )
        session.execute(delete(MetricRow).where(MetricRow.run_id == result.run_id))
        session.execute(delete(TaskRow).where(TaskRow.run_id == result.run_id))
        session.merge(run)  # attributes not set here (the owner of a rebuilt row) keep their stored values
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

    def runs(self, *, with_results: bool = True) -> list[RunRow]:
        """Every run row, oldest first; ``with_results=False`` leaves out the results.json blobs."""
        stmt = select(RunRow).order_by(RunRow.created, RunRow.id)
        if not with_results:
            stmt = stmt.options(defer(RunRow.results_json, raiseload=True))
        with Session(self.engine) as session:
            return list(session.scalars(stmt))

    def task_names(self) -> dict[str, list[str]]:
        """Each run's recorded tasks, in recording order."""
        names: dict[str, list[str]] = {}
        with Session(self.engine) as session:
            for run_id, task in session.execute(select(TaskRow.run_id, TaskRow.task).order_by(TaskRow.id)):
                names.setdefault(run_id, []).append(task)
        return names

    def get_run(self, run_id: str) -> RunResult | None:
        row = self.run_row(run_id)
        return self.result_of(row) if row is not None else None

    def result_of(self, row: RunRow) -> RunResult:
        """The RunResult a row keeps; a StoreError naming the store, the run and the way out when the stored
        JSON cannot be read."""
        try:
            return _stored_result(row)
        except (TypeError, ValueError, RecursionError) as exc:
            raise StoreError(f"results store {self.where}: the stored results.json of run {row.id} is unreadable "
                             f"({_one_line(exc)}): {self._rerecord_hint(row.run_dir)}") from None  # fmt: skip

    @staticmethod
    def row_problem(row: RunRow) -> str | None:
        """Why a row's stored results.json cannot be read, or None."""
        try:
            _stored_result(row)
        except (TypeError, ValueError, RecursionError) as exc:
            return _one_line(exc)
        return None

    def _rerecord_hint(self, run_dir: str) -> str:
        runs = Path(run_dir).parent if run_dir else Path("DIR")
        rebuild = f"`python -m harness store rebuild --store {self.where} --runs {runs}`"
        if run_dir:
            return f"pass its run directory {run_dir} instead of the id, or re-record the row with {rebuild}"
        return f"re-record the row from its run directory with {rebuild}"

    def stale_runs(self, older_than: timedelta | None = None) -> list[StaleRun]:
        """``running`` rows whose process is gone: recorded on this host by a process that no longer runs, or,
        with ``older_than``, recorded elsewhere (or by an unknown process) and not updated for that long.
        A row of a live process on this host is never stale."""
        host, now = this_host(), _now()
        stmt = select(RunRow.id, RunRow.run_dir, RunRow.pid, RunRow.hostname, RunRow.updated, RunRow.created)
        with Session(self.engine) as session:
            rows = session.execute(stmt.where(RunRow.status == "running").order_by(RunRow.created, RunRow.id)).all()
        stale = []
        for run_id, run_dir, pid, hostname, updated, created in rows:
            seen = updated or created
            if hostname == host and pid is not None:
                if not process_alive(pid, seen):
                    stale.append(StaleRun(run_id, run_dir, f"its process {pid} on {host} is gone", seen))
            elif older_than is not None and now - seen >= older_than:
                where = f"recorded on {hostname}" if hostname else "process unknown"
                stale.append(StaleRun(run_id, run_dir, f"no record for {_age(now - seen)} ({where})", seen))
        return stale

    def close_stale_runs(self, stale: Iterable[StaleRun]) -> list[tuple[StaleRun, str]]:
        """Give each stale row its final status: what its run directory's results.json says when that is
        no longer ``running`` (the process died between the two writes), else ``interrupted`` (written into
        the results.json too). A row that recorded again since it was found stale is left alone.
        Returns the rows changed, each with its new status."""
        done = []
        for run in stale:
            with self._write() as session:
                row = session.get(RunRow, run.id)
                if row is None or row.status != "running" or (row.updated or row.created) != run.seen:
                    continue
                result = _closed_result(row, f"marked interrupted by the harness: {run.reason}", run.seen)
                if result is None:  # neither the row nor the run directory holds a readable result
                    row.status, row.finished, row.updated = "interrupted", run.seen, _now()
                    done.append((run, "interrupted"))
                    continue
                self._record(session, result, row.run_dir, owned=False, updated=None)
            done.append((run, result.status))
        return done

    def interrupt_dead_runs(self) -> list[tuple[StaleRun, str]]:
        """What a run does when it opens the store: close the ``running`` rows of dead processes on this host."""
        return self.close_stale_runs(self.stale_runs())

    def remove_runs(self, run_ids: Iterable[str]) -> int:
        """Delete runs' rows (their run directories stay); returns how many runs were removed."""
        ids = list(run_ids)
        if not ids:
            return 0
        with self._write() as session:
            session.execute(delete(MetricRow).where(MetricRow.run_id.in_(ids)))
            session.execute(delete(TaskRow).where(TaskRow.run_id.in_(ids)))
            return int(session.execute(delete(RunRow).where(RunRow.id.in_(ids))).rowcount or 0)

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
