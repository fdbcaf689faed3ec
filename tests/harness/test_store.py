"""The results store on SQLite and PostgreSQL: records, migrations, concurrent writers, read-only opening."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from harness.adapter import ModelInfo
from harness.results.migrations import LATEST
from harness.results.provenance import Environment, GitInfo
from harness.results.schema import DataInfo, RunResult, RunSpec, TaskRecord, utc_now
from harness.results.store import ResultsStore, StoreError, engine_url, training_step
from harness.types import Metric
from tests.helpers.paths import TEST_DATA

V1_DUMP = TEST_DATA / "store_v1.sql"
V1_RUN = "20261126-130800-demo-5f8316"
BIG_MODEL = 3_100_000_000  # parameters of TinyLLaVA-Phi-2-SigLIP-3.1B: more than 2**31 - 1


def make_result(run_id: str, value: float, tasks: tuple[str, ...] = ("gqa",), model_path: str = "",
                branch: str | None = None, n_parameters: int | None = None) -> RunResult:
    records = {
        task: TaskRecord(
            task=task,
            version="1",
            n_samples=4,
            headline=["accuracy"],
            metrics={"accuracy": Metric(value=value, stderr=1.0, n=4), "open": Metric(value=1.0, n=2)},
            breakdowns={"semantic": {"attr": Metric(value=50.0, n=2)}},
        )
        for task in tasks
    }
    model = None
    if model_path:
        model = ModelInfo(spec=f"tinyllava:{model_path}", name="m", path=model_path, n_parameters=n_parameters)
    return RunResult(
        run_id=run_id,
        created=utc_now(),
        spec=RunSpec(command="run", tasks=list(tasks)),
        model=model,
        data=DataInfo(root="/data"),
        git=GitInfo(branch=branch),
        environment=Environment(python="3", platform="x", packages={}),
        tasks=records,
    )


def test_store_records_and_replaces_runs(store_url: str, tmp_path: Path) -> None:
    store = ResultsStore(store_url)
    store.record(make_result("r1", 50.0), tmp_path / "r1")
    store.record(make_result("r1", 75.0), tmp_path / "r1")  # progress of the same run replaces its rows
    store.record(make_result("r2", 60.0), tmp_path / "r2")
    assert [r.id for r in store.runs()] == ["r1", "r2"]
    heads = store.headline_metrics("r1")
    assert [(m.task, m.name, m.value) for m in heads] == [("gqa", "accuracy", 75.0)]
    again = ResultsStore(store_url).get_run("r2")
    assert again is not None and again.tasks["gqa"].metrics["accuracy"].value == 60.0
    assert store.schema_version() == LATEST
    store.close()


def _record_runs(url: str, worker: int, runs: int, barrier: multiprocessing.synchronize.Barrier) -> None:
    barrier.wait(timeout=60)  # every process opens the (not yet created) store at the same moment
    store = ResultsStore(url)
    for i in range(runs):
        run_id = f"w{worker}-r{i}"
        for progress in range(3):  # a run records after each task, replacing its rows each time
            store.record(make_result(run_id, 10.0 * progress + worker, tasks=("gqa", "mme")), f"/runs/{run_id}")
    store.close()


def test_concurrent_processes_lose_nothing(store_url: str) -> None:
    workers, runs = 6, 4
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(workers)
    procs = [ctx.Process(target=_record_runs, args=(store_url, w, runs, barrier)) for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=180)
    assert [p.exitcode for p in procs] == [0] * workers
    store = ResultsStore(store_url, readonly=True)
    ids = {r.id for r in store.runs()}
    assert ids == {f"w{w}-r{i}" for w in range(workers) for i in range(runs)}
    with store.engine.connect() as conn:
        n_tasks = conn.execute(text("SELECT count(*) FROM task_results")).scalar()
        n_metrics = conn.execute(text("SELECT count(*) FROM metrics")).scalar()
        versions = conn.execute(text("SELECT count(*) FROM harness_meta")).scalar()
    assert n_tasks == workers * runs * 2 and n_metrics == workers * runs * 2 * 3 and versions == 1
    for w in range(workers):
        assert [m.value for m in store.headline_metrics(f"w{w}-r0")] == [20.0 + w, 20.0 + w]
    store.close()


def _load_v1_sqlite(path: Path) -> None:
    con = sqlite3.connect(path)
    con.executescript(V1_DUMP.read_text())
    con.close()


def test_sqlite_store_of_schema_1_upgrades_in_place(tmp_path: Path) -> None:
    db = tmp_path / "harness.db"
    _load_v1_sqlite(db)
    url = f"sqlite:///{db}"
    with pytest.raises(StoreError, match=rf"schema version 1; this harness reads {LATEST}: upgrade it in place"):
        ResultsStore(url, readonly=True)
    store = ResultsStore(url)
    assert store.schema_version() == LATEST
    (old,) = store.runs()
    assert old.id == V1_RUN and old.model_name == "demo" and old.step is None
    assert old.updated is not None and old.updated == old.finished
    assert old.git_branch == (store.get_run(V1_RUN).git.branch or "")
    assert {m.name for m in store.headline_metrics(V1_RUN)} == {"accuracy", "perception", "cognition"}
    store.record(make_result("new", 1.0, model_path="/ckpt/checkpoint-300", branch="recipe-b"), tmp_path / "new")
    new = store.run_row("new")
    assert new is not None and new.step == 300 and new.git_branch == "recipe-b"
    store.close()
    columns = {c["name"] for c in inspect(create_engine(url)).get_columns("runs")}
    assert {"step", "training_run", "git_branch", "updated"} <= columns
    assert "method" in {c["name"] for c in inspect(create_engine(url)).get_columns("metrics")}
    assert ResultsStore(url, readonly=True).schema_version() == LATEST


def _downgrade_to_v1(url: str) -> None:
    """What a store written by schema version 1 looks like: no v2 columns or index, a 32-bit
    ``n_parameters`` (PostgreSQL's INTEGER; SQLite's is always 64-bit), version 1."""
    engine = create_engine(engine_url(url))
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE runs ALTER COLUMN n_parameters TYPE INTEGER"))
        conn.execute(text("DROP INDEX ix_runs_created"))
        for column in ("step", "training_run", "git_branch", "updated"):
            conn.execute(text(f"ALTER TABLE runs DROP COLUMN {column}"))
        conn.execute(text("ALTER TABLE metrics DROP COLUMN method"))
        conn.execute(text("UPDATE harness_meta SET value = '1' WHERE key = 'schema_version'"))
    engine.dispose()


def test_schema_1_upgrades_on_every_dialect(store_url: str, tmp_path: Path) -> None:
    store = ResultsStore(store_url)
    store.record(make_result("a", 5.0, model_path="/out/checkpoint-1200", branch="main"), tmp_path / "a")
    trained = make_result("b", 6.0, model_path="/out/final", branch="main")
    assert trained.model is not None
    trained.model.details.update(training_step=1500, training_run="/out")  # what training/callbacks.py records
    store.record(trained, tmp_path / "b")
    store.close()
    _downgrade_to_v1(store_url)
    store = ResultsStore(store_url)
    a, b = store.run_row("a"), store.run_row("b")
    assert store.schema_version() == LATEST
    assert a is not None and a.step == 1200 and a.git_branch == "main" and a.updated is not None
    assert a.training_run == "" and b is not None and b.step == 1500 and b.training_run == "/out"
    store.record(make_result("c", 7.0, model_path="/ckpt/phi-3b", n_parameters=BIG_MODEL), tmp_path / "c")
    c = store.run_row("c")
    assert c is not None and c.n_parameters == BIG_MODEL
    store.close()


def test_parameter_counts_past_32_bits_are_kept(store_url: str, tmp_path: Path) -> None:
    """TinyLLaVA-3.1B has more parameters than a 32-bit integer holds (PostgreSQL's INTEGER overflowed)."""
    store = ResultsStore(store_url)
    store.record(make_result("big", 60.0, model_path="/ckpt/tinyllava-3.1b", n_parameters=BIG_MODEL), tmp_path / "b")
    row = store.run_row("big")
    assert row is not None and row.n_parameters == BIG_MODEL
    store.close()


def test_a_newer_store_is_refused(store_url: str) -> None:
    ResultsStore(store_url).close()
    engine = create_engine(engine_url(store_url))
    with engine.begin() as conn:
        conn.execute(text("UPDATE harness_meta SET value = '99' WHERE key = 'schema_version'"))
    engine.dispose()
    for readonly in (False, True):
        with pytest.raises(StoreError, match=rf"schema version 99, newer than this harness's {LATEST}"):
            ResultsStore(store_url, readonly=readonly)


def test_readonly_opening_never_creates(tmp_path: Path) -> None:
    db = tmp_path / "nothing" / "harness.db"
    with pytest.raises(StoreError, match=r"no results store at .*harness\.db"):
        ResultsStore(f"sqlite:///{db}", readonly=True)
    assert not db.parent.exists()


def test_revision_changes_with_every_record(store_url: str, tmp_path: Path) -> None:
    store = ResultsStore(store_url)
    empty = store.revision()
    store.record(make_result("a", 1.0), tmp_path / "a")
    first = store.revision()
    store.record(make_result("a", 2.0), tmp_path / "a")
    assert empty[0] == 0 and first[0] == 1 and len({empty, first, store.revision()}) == 3
    store.close()


def test_plain_postgresql_urls_use_an_installed_driver() -> None:
    try:
        import psycopg2  # noqa: F401

        expected = "postgresql://u:p@127.0.0.1/db"
    except ImportError:
        expected = "postgresql+psycopg://u:p@127.0.0.1/db"
    assert engine_url("postgresql://u:p@127.0.0.1/db") == expected
    assert engine_url("sqlite:///x.db") == "sqlite:///x.db"


def test_training_step_comes_from_details_or_checkpoint_folder() -> None:
    result = make_result("a", 1.0, model_path="/runs/ft/checkpoint-2000")
    assert training_step(result) == 2000
    assert result.model is not None
    result.model.details["global_step"] = 2100
    assert training_step(result) == 2100
    assert training_step(make_result("b", 1.0)) is None
