"""Several processes under torchrun (gloo on CPU): answers and metrics identical to one process, one recorded run,
resume across world sizes, and a failing rank that ends the job at once."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.run.distributed import Claims, Distributed, Topology, topology_from_env
from tests.helpers.paths import REPO
from tests.helpers.rank_fail_plugin import register

TASKS = "gqa,mme,textvqa"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def harness_run(out: Path, *extra: str, nproc: int = 1, env: dict | None = None,
                wait: bool = True) -> subprocess.CompletedProcess[str] | subprocess.Popen[str]:  # fmt: skip
    """``harness run`` in one process, or under torchrun with ``nproc`` processes."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc)] if nproc > 1 else [
        sys.executable]  # fmt: skip
    command = [*launcher, "-m", "harness", "run", "--tasks", TASKS, "--output-dir", str(out), "--no-progress", *extra]
    if not wait:
        return subprocess.Popen(command, env=env or ENV, cwd=REPO, text=True, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    return subprocess.run(command, env=env or ENV, cwd=REPO, text=True, capture_output=True, timeout=600)


def recorded(out: Path) -> tuple[dict, dict]:
    """The one run under ``out``: its metrics and its per-sample records (answer, parse, score)."""
    runs = [p for p in out.iterdir() if (p / "results.json").is_file()]
    assert len(runs) == 1, runs
    result = json.loads((runs[0] / "results.json").read_text())
    assert result["status"] == "complete"
    metrics = {(t, m): v for t, rec in result["tasks"].items() for m, v in rec["metrics"].items()}
    samples = {}
    for path in sorted((runs[0] / "samples").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            r = json.loads(line)
            samples[(path.stem, r["id"])] = (r["response"]["text"], r["parsed"], r["score"], r["request"]["prompt"])
    return metrics, samples


def kill_job(job: subprocess.Popen[str]) -> None:
    """SIGKILL the launcher and its workers at once (torchrun starts each worker in a session of its own)."""
    listed = subprocess.run(["ps", "-o", "pid=", "--ppid", str(job.pid)], capture_output=True, text=True).stdout
    for pid in [job.pid, *(int(p) for p in listed.split())]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    job.wait()


def store_rows(out: Path) -> int:
    with sqlite3.connect(out / "harness.db") as con:
        return con.execute("SELECT count(*) FROM runs").fetchone()[0]


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict]:
    out = tmp_path_factory.mktemp("single")
    proc = harness_run(out, "--limit", "40", "--batch-size", "4")
    assert proc.returncode == 0, proc.stderr
    return recorded(out)


def test_two_processes_give_the_answers_and_metrics_of_one(single: tuple[dict, dict], tmp_path: Path) -> None:
    proc = harness_run(tmp_path, "--limit", "40", "--batch-size", "4", nproc=2)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert recorded(tmp_path) == single
    assert store_rows(tmp_path) == 1  # rank 0 alone records the run
    assert "2 processes (rank 0 records the run)" in proc.stderr


def test_a_job_killed_with_two_processes_resumes_with_one(single: tuple[dict, dict], tmp_path: Path) -> None:
    job = harness_run(tmp_path, "--limit", "40", "--batch-size", "4", nproc=2, wait=False)
    cache = tmp_path / "cache.sqlite"
    deadline = time.monotonic() + 300
    answered = 0
    while time.monotonic() < deadline and job.poll() is None:
        if cache.is_file():
            try:
                with sqlite3.connect(cache, timeout=1) as con:
                    answered = con.execute("SELECT count(*) FROM responses").fetchone()[0]
            except sqlite3.OperationalError:
                answered = 0
            if answered >= 8:
                break
        time.sleep(0.02)
    kill_job(job)
    assert answered >= 8, "the job never answered a batch"
    for run_dir in tmp_path.iterdir():  # the killed job's run directory is left as it was
        if (run_dir / "results.json").is_file():
            os.rename(run_dir, tmp_path.parent / f"killed-{run_dir.name}-{tmp_path.name}")
    proc = harness_run(tmp_path, "--limit", "40", "--batch-size", "4")
    assert proc.returncode == 0, proc.stderr
    assert recorded(tmp_path) == single
    result = json.loads(next(tmp_path.glob("*/results.json")).read_text())
    assert sum(t["timing"]["n_cached"] for t in result["tasks"].values()) >= 4  # finished answers were reused


def test_a_rank_that_fails_ends_the_job_promptly(tmp_path: Path) -> None:
    site = register(tmp_path / "site")
    env = {**ENV, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}
    start = time.monotonic()
    proc = harness_run(tmp_path / "out", "--model", "rankfail:demo", "--limit", "40", nproc=2, env=env)
    elapsed = time.monotonic() - start
    assert proc.returncode != 0
    assert "cannot load demo on this rank (test failure)" in proc.stdout + proc.stderr
    assert elapsed < 120, elapsed


def test_topology_comes_from_the_launchers_environment() -> None:
    assert topology_from_env({}) == Topology(0, 1, 0)
    assert topology_from_env({"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1"}) == Topology(5, 8, 1)
    # srun: global rank from SLURM_PROCID, never the local id
    assert topology_from_env({"SLURM_PROCID": "3", "SLURM_NTASKS": "4", "SLURM_LOCALID": "1"}) == Topology(3, 4, 1)
    with pytest.raises(UsageError, match="RANK=4 is not below WORLD_SIZE=4"):
        topology_from_env({"RANK": "4", "WORLD_SIZE": "4"})
    with pytest.raises(UsageError, match="LOCAL_RANK='x' is not an integer"):
        topology_from_env({"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "x"})


def test_claims_alone_and_by_shard() -> None:
    assert list(Claims(5)) == [0, 1, 2, 3, 4]
    assert list(Claims(7, shard=(1, 3))) == [1, 4]
    assert list(Claims(5, Distributed(Topology()), "k")) == [0, 1, 2, 3, 4]


def test_a_library_call_in_a_launched_job_is_one_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The training callback calls ``run`` on rank 0 of a launched training job: the launcher's variables must not
    make it wait for ranks that never join (only the CLI reads them)."""
    from harness.run.evaluate import RunOptions, run

    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    result = run(RunOptions(tasks="gqa", limit=8, output_dir=str(tmp_path), show_progress=False))
    assert result.status == "complete" and result.spec.world_size == 1
    assert store_rows(tmp_path) == 1
