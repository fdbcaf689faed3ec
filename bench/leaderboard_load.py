"""How long the leaderboard's board takes to load on 200 runs x 8 tasks, against a 10-run store.

    python bench/leaderboard_load.py [--runs 200] [--baseline-runs 10] [--repeats 5] [--postgres URL]

Both stores are filled through ``ResultsStore.record`` with complete runs (8 tasks, each with a headline
metric, other metrics and per-category breakdowns; synthetic scores). The timed step is what a cold
board page does: open the store read-only, read its revision, build the runs and headline frames, the
board table, its display table and its CSV. Best of ``--repeats`` for each store, interleaved, then the
ratio big / baseline. SQLite (files in a temporary folder) by default; ``--postgres URL`` (a role that
may create databases) measures on two fresh PostgreSQL databases instead, dropped afterwards.
"""

from __future__ import annotations

import argparse
import secrets
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from harness.adapter import ModelInfo
from harness.results.provenance import Environment, GitInfo
from harness.results.schema import DataInfo, RunResult, RunSpec, TaskRecord
from harness.results.store import ResultsStore, engine_url
from harness.types import Metric
from leaderboard.data import BoardFilters, board_csv, board_frame, display_table, headline_frame, open_store, runs_frame
from leaderboard.paper import paper_models

TASKS = ["vqav2", "gqa", "textvqa", "scienceqa", "mme", "mmbench", "mmvet", "llava_bench"]
LLMS = [("phi", 2_700_000_000), ("stablelm", 1_600_000_000), ("tinyllama", 1_100_000_000), ("qwen2", 500_000_000)]


def _metric(value: float, n: int = 1000) -> Metric:
    return Metric(value=value, stderr=1.2, ci_low=value - 2.4, ci_high=value + 2.4, n=n, method="bootstrap")


def synthetic_run(i: int) -> RunResult:
    """Run ``i``: a complete 8-task run with deterministic made-up scores."""
    llm, size = LLMS[i % len(LLMS)]
    created = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(hours=i)
    tasks = {}
    for k, task in enumerate(TASKS):
        value = 30.0 + (i * 7 + k * 13) % 50
        metrics = {"score": _metric(value), "yes_rate": _metric(50.0), "n_answered": _metric(1000.0)}
        breakdowns = {g: {f"{g}-{c}": _metric(value + c, 120) for c in range(8)} for g in ("category", "type")}
        tasks[task] = TaskRecord(task=task, version="1", n_samples=1000, headline=["score"], metrics=metrics,
                                 breakdowns=breakdowns)  # fmt: skip
    return RunResult(
        run_id=f"bench-{i:04d}", status="complete", created=created.isoformat(),
        finished=(created + timedelta(minutes=30)).isoformat(), spec=RunSpec(command="run", tasks=TASKS),
        model=ModelInfo(spec=f"tinyllava:/ckpt/{llm}-{i}", name=f"{llm}-siglip-{i}", n_parameters=size, llm=llm,
                        vision_tower="siglip" if i % 2 else "clip"),
        data=DataInfo(root="/data/eval"), git=GitInfo(commit=f"{i:040x}", branch=f"recipe-{i % 5}"),
        environment=Environment(python="3.11", platform="linux", packages={"torch": "2.5"}), tasks=tasks,
    )  # fmt: skip


def fill(url: str, runs: int) -> None:
    store = ResultsStore(url)
    for i in range(runs):
        store.record(synthetic_run(i), f"/results/bench-{i:04d}")
    store.close()


def load_board(url: str) -> int:
    """A cold board page: everything the Board computes before drawing. Returns the rows shown."""
    store = open_store(url)
    try:
        store.revision()
        runs, heads = runs_frame(store), headline_frame(store)
        board = board_frame(runs, heads, BoardFilters(), paper_models())
        display_table(board)
        board_csv(board)
        return len(board.table)
    finally:
        store.close()


def seconds(action: Callable[[], object]) -> float:
    """Wall time of one call."""
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


@contextmanager
def pg_database(base_url: str) -> Iterator[str]:
    url = make_url(engine_url(base_url))
    name = f"harness_bench_{secrets.token_hex(4)}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--baseline-runs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--postgres", default=None, help="PostgreSQL server URL (default: SQLite files)")
    args = parser.parse_args()

    with ExitStack() as stack:
        if args.postgres:
            urls = [stack.enter_context(pg_database(args.postgres)) for _ in range(2)]
        else:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            urls = [f"sqlite:///{folder / name / 'harness.db'}" for name in ("baseline", "big")]
        sizes = [args.baseline_runs, args.runs]
        for url, n in zip(urls, sizes):
            fill_s = seconds(lambda url=url, n=n: fill(url, n))
            print(f"recorded {n} runs x {len(TASKS)} tasks in {fill_s:.2f} s")
        rows = [load_board(url) for url in urls]  # warm-up: imports, connection set-up, paper numbers
        best = [float("inf"), float("inf")]
        for _ in range(max(1, args.repeats)):  # interleaved, so both stores see the same machine noise
            for k, url in enumerate(urls):
                best[k] = min(best[k], seconds(lambda url=url: load_board(url)))
        backend = "PostgreSQL" if args.postgres else "SQLite"
        for n, r, s in zip(sizes, rows, best):
            print(f"{backend} board load, {n} runs x {len(TASKS)} tasks ({r} rows): {s * 1000:.1f} ms "
                  f"(best of {args.repeats})")  # fmt: skip
        print(f"ratio {args.runs} / {args.baseline_runs} runs: {best[1] / best[0]:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
