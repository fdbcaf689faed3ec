"""Results-store and cache faults through the real CLI: a damaged ``harness.db`` or ``cache.sqlite`` (truncated,
garbage bytes), a store row whose stored results.json is broken, rows left ``running`` by killed runs, and
run directories and rows that disagree. Each fault ends in one ``error:`` line naming the file and the way
out, a non-zero exit and no traceback; ``harness store rebuild`` restores the rows from the run directories.

The runs are two demo runs of GQA on 8 samples, made once per module; each test damages its own copy.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from harness.results.schema import RESULTS_FILE, load_results
from harness.results.store import STORE_FILE, ResultsStore, this_host, write_results_file
from harness.run.response_cache import CACHE_FILE

pytestmark = pytest.mark.slow

REBUILD = "store rebuild"
CACHE_WAY_OUT = "move it aside (it is only a cache) and run again"


def harness(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], capture_output=True, text=True, timeout=600, cwd=cwd
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    """Non-zero exit, no traceback, and one ``error:`` line that holds every needle (the file, the way out)."""
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and all(n in errors[0] for n in needles), (needles, proc.stderr)


@dataclass(frozen=True)
class Runs:
    root: Path  # results root: two run directories, cache.sqlite, harness.db
    ids: tuple[str, str]


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory: pytest.TempPathFactory) -> Runs:
    root = tmp_path_factory.mktemp("store-faults") / "results"
    for _ in range(2):
        proc = harness("run", "--tasks", "gqa", "--limit", "8", "--no-progress", "--output-dir", str(root),
                       "--store", f"sqlite:///{root / STORE_FILE}", cwd=root.parent)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    a, b = sorted(p.name for p in root.iterdir() if (p / RESULTS_FILE).is_file())
    return Runs(root, (a, b))


def copy_results(runs: Runs, tmp_path: Path) -> Path:
    """A private copy of the results root, its store rows pointing at the copy's run directories."""
    root = tmp_path / "results"
    shutil.copytree(runs.root, root)
    con = sqlite3.connect(root / STORE_FILE)
    with con:
        con.execute("UPDATE runs SET run_dir = replace(run_dir, ?, ?)", (str(runs.root.resolve()), str(root.resolve())))
    con.close()
    return root


def damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "garbage":
        path.write_bytes(random.Random(0).randbytes(len(data)))
    else:
        assert how == "empty"
        path.write_bytes(b"")


def row_ids(db: Path) -> list[str]:
    con = sqlite3.connect(db)
    try:
        return sorted(row[0] for row in con.execute("SELECT id FROM runs"))
    finally:
        con.close()


def listed(root: Path, store: str | None = None) -> dict[str, dict]:
    where = ["--store", store] if store else ["--output-dir", str(root)]
    proc = harness("store", "list", "--json", *where, cwd=root.parent)
    assert proc.returncode == 0, proc.stderr
    return {entry["run_id"]: entry for entry in json.loads(proc.stdout)}


@pytest.mark.parametrize("command", ["run", "compare", "store list"])
@pytest.mark.parametrize("how", ["truncated", "garbage"])
def test_a_damaged_store_is_named_with_the_way_out(demo_runs: Runs, tmp_path: Path, how: str, command: str) -> None:
    root = copy_results(demo_runs, tmp_path)
    db = root / STORE_FILE
    damage(db, how)
    a, b = demo_runs.ids
    args = {
        "run": ["run", "--tasks", "gqa", "--limit", "8", "--no-progress", "--output-dir", str(root)],
        "compare": ["compare", a, b, "--store", f"sqlite:///{db}"],
        "store list": ["store", "list", "--output-dir", str(root)],
    }[command]
    assert_one_line_error(harness(*args, cwd=tmp_path), str(db), "is damaged", REBUILD)


@pytest.mark.parametrize("how", ["truncated", "garbage", "empty"])
def test_rebuild_restores_the_rows_from_the_run_directories(demo_runs: Runs, tmp_path: Path, how: str) -> None:
    root = copy_results(demo_runs, tmp_path)
    db = root / STORE_FILE
    before = row_ids(db)
    damage(db, how)
    proc = harness("store", "rebuild", "--output-dir", str(root), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    aside = [p for p in root.glob(f"{STORE_FILE}.corrupt-*") if not p.name.endswith(("-wal", "-shm"))]
    assert len(aside) == (0 if how == "empty" else 1), proc.stdout  # an empty file is an empty store, kept
    rows = listed(root)
    assert sorted(rows) == before == sorted(demo_runs.ids)
    assert {r["status"] for r in rows.values()} == {"complete"}
    assert {r["run_dir"] for r in rows.values()} == {str(root.resolve() / run_id) for run_id in demo_runs.ids}
    proc = harness("compare", *demo_runs.ids, "--store", f"sqlite:///{db}", cwd=tmp_path)
    assert proc.returncode == 0 and "gqa" in proc.stdout, proc.stderr


BROKEN_ROWS = {"not JSON": '{"run_id": "x", "status": ', "not a run": '{"run_id": 3}'}


@pytest.mark.parametrize("blob", list(BROKEN_ROWS.values()), ids=list(BROKEN_ROWS))
def test_a_broken_store_row_is_named_and_rebuild_mends_it(demo_runs: Runs, tmp_path: Path, blob: str) -> None:
    root = copy_results(demo_runs, tmp_path)
    db, (a, b) = root / STORE_FILE, demo_runs.ids
    con = sqlite3.connect(db)
    with con:
        con.execute("UPDATE runs SET results_json = ? WHERE id = ?", (blob, a))
    con.close()
    store = f"sqlite:///{db}"
    for args in (["compare", a, b, "--store", store], ["gate", "--baseline", a, "--candidate", b, "--store", store]):
        assert_one_line_error(harness(*args, cwd=tmp_path), str(db), a, "unreadable", REBUILD)
    assert sorted(listed(root)) == sorted(demo_runs.ids)  # listing reads no stored results.json
    check = harness("store", "check", "--output-dir", str(root), cwd=tmp_path)
    assert check.returncode == 1 and a in check.stdout and "unreadable" in check.stdout, check.stdout
    proc = harness("store", "rebuild", "--output-dir", str(root), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not list(root.glob(f"{STORE_FILE}.corrupt-*"))  # the file was sound: rows replaced in place
    proc = harness("compare", a, b, "--store", store, cwd=tmp_path)
    assert proc.returncode == 0 and "gqa" in proc.stdout, proc.stderr
    check = harness("store", "check", "--output-dir", str(root), cwd=tmp_path)
    assert check.returncode == 0 and "agree: 2 run(s)" in check.stdout, check.stdout


@pytest.mark.parametrize("command", ["run", "run --judge demo", "score --judge demo"])
@pytest.mark.parametrize("how", ["truncated", "garbage"])
def test_a_damaged_cache_is_named_with_the_way_out(demo_runs: Runs, tmp_path: Path, how: str, command: str) -> None:
    """``run`` opens the response cache, ``--judge`` the judge table of the same file first; ``score`` of a
    samples log caches judge replies in the results root of its run."""
    root = copy_results(demo_runs, tmp_path)
    cache = root / CACHE_FILE
    damage(cache, how)
    a = demo_runs.ids[0]
    run = ["run", "--tasks", "gqa", "--limit", "8", "--no-progress", "--output-dir", str(root)]
    args = {
        "run": run,
        "run --judge demo": [*run, "--judge", "demo"],
        "score --judge demo": ["score", "gqa", "--answers", str(root / a / "samples" / "gqa.jsonl"), "--judge", "demo",
                               "--data-root", load_results(root / a).data.root],
    }[command]  # fmt: skip
    assert_one_line_error(harness(*args, cwd=tmp_path), str(cache), "is damaged", CACHE_WAY_OUT)


def _running(db: Path) -> list[str]:
    if not db.is_file():
        return []
    try:
        con = sqlite3.connect(db, timeout=1)
        try:
            return [row[0] for row in con.execute("SELECT id FROM runs WHERE status = 'running'")]
        finally:
            con.close()
    except sqlite3.Error:  # not created yet, or busy
        return []


def test_a_killed_run_is_marked_interrupted_by_the_next_run(tmp_path: Path) -> None:
    root = tmp_path / "results"
    db = root / STORE_FILE
    victim = subprocess.Popen(
        [sys.executable, "-m", "harness", "run", "--tasks", "gqa", "--batch-size", "1", "--no-cache", "--no-progress",
         "--output-dir", str(root)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path,
    )  # fmt: skip
    deadline = time.time() + 300
    while not _running(db) and victim.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    victim.kill()
    victim.wait()
    (killed,) = _running(db)
    entry = listed(root)[killed]
    assert entry["status"] == "running" and entry["stale"] and str(victim.pid) in entry["stale_reason"]

    proc = harness("run", "--tasks", "gqa", "--limit", "8", "--no-progress", "--output-dir", str(root), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert f"run {killed} marked interrupted" in proc.stderr
    statuses = {run_id: e["status"] for run_id, e in listed(root).items()}
    assert statuses.pop(killed) == "interrupted" and list(statuses.values()) == ["complete"]
    on_disk = load_results(root / killed)
    assert on_disk.status == "interrupted" and "is gone" in on_disk.errors[-1]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_rows_are_settled_and_live_ones_left(demo_runs: Runs, tmp_path: Path, store_url: str) -> None:
    """The start-of-run hook settles rows of dead processes on this host; ``store clean`` also rows of other
    hosts after ``--older-than``; ``--remove`` deletes instead; a live process's row is never touched."""
    root = copy_results(demo_runs, tmp_path)
    proc = harness("store", "rebuild", "--store", store_url, "--runs", str(root), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    template = load_results(root / demo_runs.ids[0])
    host, dead, now = this_host(), _dead_pid(), datetime.now(UTC).replace(tzinfo=None)
    fabricated = {  # run id: (host, pid, last record, status in its run directory)
        "dead": (host, dead, now, "running"),
        "dead-after-writing": (host, dead, now, "complete"),  # killed between results.json and the store
        "live": (host, os.getpid(), now, "running"),  # this test's own process
        "remote-recent": ("elsewhere.invalid", 4242, now, "running"),
        "remote-old": ("elsewhere.invalid", 4242, now - timedelta(days=30), "running"),
    }
    store = ResultsStore(store_url)
    try:
        for run_id, (owner_host, pid, updated, disk_status) in fabricated.items():
            result = template.model_copy(deep=True, update={"run_id": run_id, "status": "running"})
            run_dir = tmp_path / "fabricated" / run_id
            run_dir.mkdir(parents=True)
            write_results_file(run_dir, result.model_copy(update={"status": disk_status}))
            store.record(result, run_dir, updated=updated)
            with store.engine.begin() as conn:
                conn.execute(text("UPDATE runs SET pid = :pid, hostname = :host WHERE id = :id"),
                             {"pid": pid, "host": owner_host, "id": run_id})  # fmt: skip
        settled = sorted((s.id, status) for s, status in store.interrupt_dead_runs())
    finally:
        store.close()
    assert settled == [("dead", "interrupted"), ("dead-after-writing", "complete")]
    assert load_results(tmp_path / "fabricated" / "dead").status == "interrupted"

    dry = harness("store", "clean", "--store", store_url, "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0 and "would settle remote-old" in dry.stdout and "remote-recent" not in dry.stdout
    assert harness("store", "clean", "--store", store_url, cwd=tmp_path).returncode == 0
    rows = listed(root, store_url)
    assert {k: rows[k]["status"] for k in fabricated} == {
        "dead": "interrupted", "dead-after-writing": "complete", "live": "running", "remote-recent": "running",
        "remote-old": "interrupted",
    }  # fmt: skip
    proc = harness("store", "clean", "--store", store_url, "--older-than", "0", "--remove", cwd=tmp_path)
    assert proc.returncode == 0 and "removed remote-recent" in proc.stdout, proc.stdout
    rows = listed(root, store_url)
    assert "remote-recent" not in rows and rows["live"]["status"] == "running"
    assert (tmp_path / "fabricated" / "remote-recent" / RESULTS_FILE).is_file()  # the run directory stays


def test_check_reports_what_disagrees_and_rebuild_adds_missing_rows(
    demo_runs: Runs, tmp_path: Path, store_url: str
) -> None:
    root = copy_results(demo_runs, tmp_path)
    a, b = demo_runs.ids

    def check() -> subprocess.CompletedProcess[str]:
        return harness("store", "check", "--store", store_url, "--runs", str(root), cwd=tmp_path)

    assert harness("store", "rebuild", "--store", store_url, "--runs", str(root), cwd=tmp_path).returncode == 0
    proc = check()
    assert proc.returncode == 0 and "agree: 2 run(s)" in proc.stdout, proc.stdout
    store = ResultsStore(store_url)
    assert store.remove_runs([a]) == 1  # as if the run was killed between results.json and the store insert
    store.close()
    shutil.rmtree(root / b)  # a run directory deleted by hand
    proc = check()
    assert proc.returncode == 1 and str(root / a) in proc.stdout and f"{b}: {root / b}" in proc.stdout, proc.stdout
    assert harness("store", "rebuild", "--store", store_url, "--runs", str(root), cwd=tmp_path).returncode == 0
    proc = check()
    assert proc.returncode == 1 and "no store row" not in proc.stdout and f"{b}: {root / b}" in proc.stdout
