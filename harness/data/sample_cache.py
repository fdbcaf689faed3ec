"""Parsed samples kept on disk, so scoring the same data again skips parsing the official files.

Parsing VQAv2 val's 190 MB of JSON into 214k samples takes seconds; reading them back from a pickle takes
a fraction of that. A cache file is used only when everything its samples came from is unchanged:

- the task (name and version) and which of its loaders ran (``load``, or ``load_for_scoring``);
- the data root as given (samples hold image paths under it);
- the content digest of the files that loader reads (``data_fingerprint``, memoized by size and mtime);
- the source code of the harness and the task plugins (any edit is a miss, never a stale hit).

Only loads that took at least ``MIN_SECONDS`` are kept (``HARNESS_SAMPLE_CACHE=all``: every load;
``HARNESS_SAMPLE_CACHE=0``: none, and nothing is read). The file is written by a forked child where the
platform has ``fork`` (the scoring goes on meanwhile), else in line. A cache file that cannot be read is
ignored and replaced.

The trade, measured on VQAv2 val (214k answers, 2 cores): the run that fills the cache pays the first
content digest of the files and the copy-on-write pages of the forked writer (about 2 s); every later run
skips the parse (2.5 s of JSON and 1.5 s of building samples), reading a 29 MB pickle in about 0.4 s.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import pickle
import sys
import tempfile
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path

from harness.paths import cache_dir
from harness.task import Task
from harness.types import Sample

CACHE_ENV = "HARNESS_SAMPLE_CACHE"
FOLDER = "samples"
FORMAT = "1"  # bumped when the file layout changes
MIN_SECONDS = 1.0  # faster loads are not worth a file
STALE_TMP_SECONDS = 3600.0  # a partial file this old belongs to a writer that was killed
_PACKAGES = ("harness", "tasks")
_writers: list[int] = []  # children still writing a cache file (``wait_for_writes`` reaps them)


def _mode() -> str:
    return os.environ.get(CACHE_ENV, "1").strip().lower()


@cache
def _source_digest(folders: tuple[Path, ...]) -> str:
    """sha256 over every ``.py`` file under ``folders`` (names and contents)."""
    digest = hashlib.sha256()
    for folder in folders:
        for path in sorted(folder.rglob("*.py")):
            digest.update(f"{path.relative_to(folder.parent).as_posix()}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _code_folders(task: Task) -> tuple[Path, ...]:
    """The harness and task packages, and the folder of the task's own module (a plugin may live elsewhere)."""
    repo = Path(__file__).resolve().parents[2]
    folders = {repo / name for name in _PACKAGES}
    module_file = inspect.getsourcefile(type(task))
    if module_file:
        folders.add(Path(module_file).resolve().parent)
    return tuple(sorted(folders))


def cache_path(task: Task, root: Path, loader: str, fingerprint: str) -> Path:
    """Where the samples of this task, root, loader and data fingerprint are kept."""
    parts = [FORMAT, sys.version, task.name, task.version, loader, str(root), fingerprint]
    parts.append(_source_digest(_code_folders(task)))
    key = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]
    return cache_dir() / FOLDER / f"{task.name}-{_root_tag(root)}-{key}.pickle"


def _root_tag(root: Path) -> str:
    return hashlib.sha256(str(root).encode()).hexdigest()[:12]


def read(path: Path) -> list[Sample] | None:
    """The cached samples, or None when the file is missing or unreadable (or, where files have owners, is not
    this user's: a pickle runs code when read, so another user's file in a shared cache is never loaded)."""
    try:
        with path.open("rb") as handle:
            if hasattr(os, "getuid") and os.fstat(handle.fileno()).st_uid != os.getuid():
                return None
            samples = pickle.load(handle)
    except Exception:  # a truncated, foreign or outdated file is a miss, never an error
        return None
    return samples if isinstance(samples, list) and (not samples or type(samples[0]) is Sample) else None


def _write(path: Path, samples: list[Sample]) -> None:
    """Atomically replace ``path`` and drop the older files of the same task and root; errors are ignored."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            pickle.dump(samples, handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
        stem = path.name.rsplit("-", 1)[0]  # task and root
        for old in path.parent.glob(f"{stem}-*.pickle"):
            if old != path:
                old.unlink(missing_ok=True)
        for left in path.parent.glob(f".{stem}-*.tmp"):  # a writer killed before its rename leaves one
            if time.time() - left.stat().st_mtime > STALE_TMP_SECONDS:
                left.unlink(missing_ok=True)
    except OSError:
        pass


def write(path: Path, samples: list[Sample]) -> None:
    """Keep ``samples`` at ``path``: in a forked child where possible, so the caller does not wait."""
    if not hasattr(os, "fork"):
        _write(path, samples)
        return
    _reap(os.WNOHANG)
    pid = os.fork()
    if pid == 0:  # the child: write, then leave without running the parent's exit handlers
        try:
            quiet = os.open(os.devnull, os.O_RDWR)  # let go of the parent's pipes: `harness score | jq` ends
            for fd in (0, 1, 2):
                os.dup2(quiet, fd)
            _write(path, samples)
        finally:
            os._exit(0)
    _writers.append(pid)


def _reap(options: int) -> None:
    """Collect the writers that have finished (``os.WNOHANG``), or wait for all of them (0)."""
    for pid in list(_writers):
        try:
            done, _ = os.waitpid(pid, options)
        except ChildProcessError:
            done = pid
        if done:
            _writers.remove(pid)


def wait_for_writes() -> None:
    """Wait for the cache files being written by children of this process."""
    _reap(0)


def cached_load(task: Task, root: Path, loader: str, fingerprint: Callable[[], str],
                load: Callable[[], list[Sample]]) -> list[Sample]:  # fmt: skip
    """``load()``, or its samples from the cache when the task, code and data are unchanged."""
    mode = _mode()
    if mode == "0":
        return load()
    path = cache_path(task, root, loader, fingerprint())
    samples = read(path)
    if samples is not None:
        return samples
    start = time.perf_counter()
    samples = load()
    if mode == "all" or time.perf_counter() - start >= MIN_SECONDS:
        write(path, samples)
    return samples
