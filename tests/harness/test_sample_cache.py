"""The sample cache: a second scoring reads the parsed samples back, and any change of data or code is a miss."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.data import sample_cache
from harness.data.check import load_for
from harness.registry import get_task
from tasks.vqav2 import VQAv2ValTask
from tests.helpers.paths import REPO

ANNOTATIONS = "vqav2/v2_mscoco_val2014_annotations.json"


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv(sample_cache.CACHE_ENV, "all")
    data = tmp_path / "data"
    get_task("vqav2_val").write_demo(data, 0)
    return data


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The roots ``VQAv2ValTask.load`` parsed (the real loader, counted)."""
    seen: list[Path] = []
    real = VQAv2ValTask.load

    def counted(self: VQAv2ValTask, data_root: Path):  # type: ignore[no-untyped-def]
        seen.append(data_root)
        return real(self, data_root)

    monkeypatch.setattr(VQAv2ValTask, "load", counted)
    return seen


def _cached_files(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "cache" / sample_cache.FOLDER).glob("*.pickle"))


def _load(root: Path):  # type: ignore[no-untyped-def]
    samples = load_for(get_task("vqav2_val"), root, "score")
    sample_cache.wait_for_writes()
    return samples


def test_the_second_load_reads_the_samples_back(root: Path, loads: list[Path], tmp_path: Path) -> None:
    first = _load(root)
    assert len(loads) == 1 and len(_cached_files(tmp_path)) == 1
    second = _load(root)
    assert len(loads) == 1  # not parsed again
    assert second == first and second is not first


def test_changed_data_is_parsed_again_and_replaces_the_old_file(root: Path, loads: list[Path], tmp_path: Path) -> None:
    first = _load(root)
    path = root / ANNOTATIONS
    data = json.loads(path.read_text())
    data["annotations"][0]["answers"][0]["answer"] = "changed answer"
    path.write_text(json.dumps(data))
    second = _load(root)
    assert len(loads) == 2
    assert second[0].target[0] == "changed answer" and first[0].target[0] != "changed answer"
    assert len(_cached_files(tmp_path)) == 1  # the stale file of this task and root is gone
    assert _load(root) == second and len(loads) == 2


def test_another_task_version_is_a_miss(root: Path, loads: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    _load(root)
    monkeypatch.setattr(VQAv2ValTask, "version", "999")
    _load(root)
    assert len(loads) == 2


def test_an_unreadable_cache_file_is_a_miss_and_is_replaced(root: Path, loads: list[Path], tmp_path: Path) -> None:
    first = _load(root)
    (cached,) = _cached_files(tmp_path)
    cached.write_bytes(cached.read_bytes()[:100])
    assert _load(root) == first and len(loads) == 2
    assert _load(root) == first and len(loads) == 2


def test_the_cache_can_be_turned_off(root: Path, loads: list[Path], tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv(sample_cache.CACHE_ENV, "0")
    _load(root)
    _load(root)
    assert len(loads) == 2 and _cached_files(tmp_path) == []


def test_fast_loads_are_not_kept_by_default(root: Path, loads: list[Path], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv(sample_cache.CACHE_ENV, "1")
    _load(root)  # the demo's few questions load in milliseconds
    assert _cached_files(tmp_path) == []


def test_harness_score_gives_the_same_result_from_the_cache(root: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    answers = tmp_path / "answers.jsonl"
    monkeypatch.setenv(sample_cache.CACHE_ENV, "0")
    samples = load_for(get_task("vqav2_val"), root, "score")
    lines = [{"question_id": s.metadata["question_id"], "text": s.target[i % 10]} for i, s in enumerate(samples)]
    answers.write_text("".join(json.dumps(line) + "\n" for line in lines))

    def score(mode: str) -> str:
        env = {**os.environ, sample_cache.CACHE_ENV: mode}
        command = [sys.executable, "-m", "harness", "score", "vqav2_val", "--answers", str(answers),
                   "--data-root", str(root), "--json"]  # fmt: skip
        proc = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=REPO)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    uncached = score("0")
    assert _cached_files(tmp_path) == []
    written = score("all")
    deadline = time.monotonic() + 60  # written by a child of the finished process, which lets go of its pipes
    while not _cached_files(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(_cached_files(tmp_path)) == 1
    assert score("all") == written == uncached


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="giving a file to another user needs root")
def test_another_users_cache_file_is_never_loaded(root: Path, loads: list[Path], tmp_path: Path) -> None:
    first = _load(root)
    (cached,) = _cached_files(tmp_path)
    os.chown(cached, 4242, -1)
    assert _load(root) == first and len(loads) == 2  # parsed again (and the file replaced by this user's)
    (replaced,) = _cached_files(tmp_path)
    assert replaced.stat().st_uid == os.getuid()


def test_a_killed_writers_partial_file_is_removed_once_stale(root: Path, tmp_path: Path) -> None:
    folder = tmp_path / "cache" / sample_cache.FOLDER
    folder.mkdir(parents=True)
    stem = f"vqav2_val-{sample_cache._root_tag(root)}"
    stale, fresh = folder / f".{stem}-old-1.tmp", folder / f".{stem}-new-2.tmp"
    for partial in (stale, fresh):
        partial.write_bytes(b"half a pickle")
    hours_ago = time.time() - 2 * sample_cache.STALE_TMP_SECONDS
    os.utime(stale, (hours_ago, hours_ago))
    first = _load(root)
    assert not stale.exists() and fresh.exists()  # a fresh one may be another writer's, still at work
    assert _load(root) == first
