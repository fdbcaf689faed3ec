"""``harness run --shard I/N`` then ``harness merge``: the merged run equals a run of one process, and merge
refuses parts that are not every shard of one command, once."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.results.schema import load_results
from harness.results.store import ResultsStore, default_store_url

pytestmark = pytest.mark.slow

TASKS = "gqa,mme"
LIMIT = "40"


def run_args(out: Path, *extra: str, limit: str = LIMIT) -> list[str]:
    return ["run", "--tasks", TASKS, "--limit", limit, "--output-dir", str(out), "--no-progress", *extra]


def harness(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, timeout=600)


def run_all(commands: list[list[str]]) -> None:
    """Start the commands together (as a job array would) and wait for every one to succeed."""
    procs = [subprocess.Popen([sys.executable, "-m", "harness", *c], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for c in commands]  # fmt: skip
    for command, proc in zip(commands, procs):
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"{command}: {err}"


def run_dirs(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if (p / "results.json").is_file())


def by_shard(out: Path) -> list[Path]:
    """The partial run dirs under ``out``, in shard order."""
    return sorted(run_dirs(out), key=lambda p: int(str(load_results(p).spec.shard).split("/")[0]))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One process (``one``), 2 shards (``two``), 3 shards (``three``), and shard 1/2 of ``--limit 20``."""
    root = tmp_path_factory.mktemp("merge")
    folders = {name: root / name for name in ("one", "two", "three", "limit20")}
    proc = harness(*run_args(folders["one"]))  # first and alone: it writes the demo data the others read
    assert proc.returncode == 0, proc.stderr
    run_all([
        *(run_args(folders["two"], "--shard", f"{i}/2") for i in range(2)),
        *(run_args(folders["three"], "--shard", f"{i}/3") for i in range(3)),
        run_args(folders["limit20"], "--shard", "1/2", limit="20"),
    ])  # fmt: skip
    return folders


def merge(parts: list[Path], out: Path) -> Path:
    proc = harness("merge", *map(str, parts), "--output-dir", str(out))
    assert proc.returncode == 0, proc.stderr
    merged = Path(proc.stdout.strip().splitlines()[-1])
    assert merged.parent == out and (merged / "results.json").is_file()
    return merged


def sample_lines(run_dir: Path, task: str) -> list[dict[str, Any]]:
    """The samples log without what differs between equal runs (answer timing, cache hits)."""
    lines = [json.loads(line) for line in (run_dir / "samples" / f"{task}.jsonl").read_text().splitlines()]
    for line in lines:
        line["response"] = {k: v for k, v in line["response"].items() if k not in ("seconds", "cached")}
    return lines


def assert_same_run(merged: Path, single: Path) -> None:
    a, b = load_results(merged), load_results(single)
    assert a.status == "complete" and a.spec.shard is None and a.spec.command == "run"
    assert list(a.tasks) == list(b.tasks) == TASKS.split(",")
    for task in a.tasks:
        ra, rb = a.tasks[task], b.tasks[task]
        assert ra.metrics and ra.metrics == rb.metrics, task  # values, stderr, intervals, n, method
        assert ra.breakdowns == rb.breakdowns and ra.headline == rb.headline, task
        assert (ra.n_samples, ra.n_errors, ra.n_missing) == (rb.n_samples, rb.n_errors, rb.n_missing), task
        assert ra.protocol_settings == rb.protocol_settings and ra.data_fingerprint == rb.data_fingerprint, task
        assert sample_lines(merged, task) == sample_lines(single, task), task
    assert a.model == b.model and a.protocol == b.protocol and a.data.fingerprints == b.data.fingerprints


def test_two_shards_merged_equal_one_process(runs: dict[str, Path], tmp_path: Path) -> None:
    parts = by_shard(runs["two"])
    assert [load_results(p).status for p in parts] == ["partial", "partial"]
    merged = merge(parts, tmp_path / "merged")
    assert_same_run(merged, run_dirs(runs["one"])[0])
    result = load_results(merged)
    assert result.spec.world_size == 2 and result.spec.argv[:3] == ["merge", str(parts[0]), str(parts[1])]
    assert result.tasks["gqa"].timing.n_generated == 40 and result.tasks["gqa"].timing.n_requests == 40


def test_a_merged_run_is_one_run_dir_and_one_complete_store_row(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "merged"
    merged = merge(by_shard(runs["two"]), out)
    assert run_dirs(out) == [merged]
    store = ResultsStore(default_store_url(out))
    rows = store.runs()
    store.close()
    assert [(r.id, r.status) for r in rows] == [(merged.name, "complete")]


def test_three_shards_merged_equal_one_process(runs: dict[str, Path], tmp_path: Path) -> None:
    parts = by_shard(runs["three"])
    assert [load_results(p).spec.shard for p in parts] == ["0/3", "1/3", "2/3"]
    merged = merge(list(reversed(parts)), tmp_path / "merged")  # any order
    assert_same_run(merged, run_dirs(runs["one"])[0])
    assert load_results(merged).spec.world_size == 3


def refused(parts: list[Path], tmp_path: Path) -> str:
    """The one-line error of a refused merge (exit code 2, nothing written)."""
    out = tmp_path / "refused"
    proc = harness("merge", *map(str, parts), "--output-dir", str(out))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert not out.exists() or run_dirs(out) == []
    return lines[0]


def test_a_part_given_twice_is_refused(runs: dict[str, Path], tmp_path: Path) -> None:
    first, _ = by_shard(runs["two"])
    assert refused([first, first], tmp_path) == f"error: {first}: shard 0/2 given twice (also {first})"


def test_a_missing_part_is_refused(runs: dict[str, Path], tmp_path: Path) -> None:
    first, _ = by_shard(runs["two"])
    message = refused([first], tmp_path)
    assert "shard(s) 1/2 missing" in message and str(first) in message


def test_parts_of_different_limits_are_refused(runs: dict[str, Path], tmp_path: Path) -> None:
    first, _ = by_shard(runs["two"])
    (other,) = run_dirs(runs["limit20"])
    message = refused([first, other], tmp_path)
    assert message.startswith(f"error: {other}: spec.limit is 20, but {first} has 40")


def test_a_run_that_is_not_partial_is_refused(runs: dict[str, Path], tmp_path: Path) -> None:
    first, _ = by_shard(runs["two"])
    (single,) = run_dirs(runs["one"])
    message = refused([first, single], tmp_path)
    assert message == f"error: {single}: status is 'complete', not 'partial' (merge joins the runs of --shard I/N)"


def copy_parts(out: Path, tmp_path: Path) -> list[Path]:
    copies = []
    for part in by_shard(out):
        copies.append(Path(shutil.copytree(part, tmp_path / "parts" / part.name)))
    return copies


def test_answers_missing_from_every_part_are_refused(runs: dict[str, Path], tmp_path: Path) -> None:
    first, second = copy_parts(runs["two"], tmp_path)
    log = second / "samples" / "gqa.jsonl"
    lines = log.read_text().splitlines()
    log.write_text("\n".join(lines[1:]) + "\n")
    dropped = json.loads(lines[0])["id"]
    assert refused([first, second], tmp_path) == f"error: task gqa: 1 of 40 sample(s) have no answer in any part, " \
                                                 f"e.g. id {dropped}"  # fmt: skip


def test_answers_in_two_parts_are_refused(runs: dict[str, Path], tmp_path: Path) -> None:
    first, second = copy_parts(runs["two"], tmp_path)
    twice = (first / "samples" / "mme.jsonl").read_text().splitlines()[0]
    with (second / "samples" / "mme.jsonl").open("a") as log:
        log.write(twice + "\n")
    message = refused([first, second], tmp_path)
    assert message.startswith("error: task mme: 1 sample(s) answered by more than one part, e.g. id ")
    assert str(first) in message and str(second) in message


@pytest.mark.parametrize(("content", "message"), [
    (b"\x8c\x00garbage", "results.json: not UTF-8 text"),
    (b"{}", "results.json: field 'run_id': Field required"),
])  # fmt: skip
def test_a_damaged_results_file_is_one_line(tmp_path: Path, content: bytes, message: str) -> None:
    part = tmp_path / "part"
    part.mkdir()
    (part / "results.json").write_bytes(content)
    proc = harness("merge", str(part))
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr
