"""``harness data prepare``: build a task's data-root files from a public Hugging Face parquet copy.

The flow: resolve the source (``hf``: download only the files the task needs, pinned to the commit
the revision resolves to; a directory: a snapshot downloaded before), run ``task.prepare(snapshot,
root)`` under a progress display, check that the written files load with the task's own loader, and
record where they came from in ``<root>/harness_sources/<task>.json`` (repository, requested
revision, resolved commit, files used with their sha256, date, limitations).

Which files a task needs: ``tasks/<package>/prepare.py`` defines ``HF_PATTERNS``, a dict from task
name to the glob patterns (relative to the repository root) of its parquet files, or, where the
task can be prepared from several repositories with different layouts, to a dict from repository id
to patterns. Prepare modules
read those files with the helpers at the end of this module: ``find_files``, ``iter_rows``,
``image_bytes``, ``write_file`` and ``note`` (a limitation, recorded in the sources file).
"""

from __future__ import annotations

import contextlib
import contextvars
import fnmatch
import hashlib
import importlib
import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from harness.errors import DataError, HarnessError, UsageError
from harness.task import Task

SOURCES_DIR = "harness_sources"
LOCAL = "local"
HUB_DEFAULT_REVISION = "main"
_HASH_CHUNK = 1 << 20
_ROW_BATCH = 256
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class Snapshot:
    """A local folder holding (part of) a dataset repository at one revision."""

    path: Path
    repo: str | None
    revision: str  # as requested ("local" for a folder given on the command line)
    commit: str  # the commit the revision resolved to ("local" when unknown)
    resolved_repo: str | None = None  # the hub's id for ``repo`` when it differs (a renamed repository)


@dataclass
class PrepareLog:
    """What a running prepare reports: limitations, and the progress display (None: no display)."""

    progress: Progress | None = None
    notes: list[str] = field(default_factory=list)


_LOG: contextvars.ContextVar[PrepareLog | None] = contextvars.ContextVar("harness_prepare_log", default=None)


# ---------------------------------------------------------------------------------------------
# Which files a task needs


def _prepare_module(task: Task) -> Any | None:
    """``<task package>.prepare``, or None when the task's package has none."""
    package = type(task).__module__
    for name in (f"{package}.prepare", f"{package.rpartition('.')[0]}.prepare"):
        if name.startswith("."):
            continue
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
    return None


def _pattern_table(task: Task) -> Any:
    """The task's entry of its prepare module's ``HF_PATTERNS`` (None when it has none)."""
    module = _prepare_module(task)
    table = getattr(module, "HF_PATTERNS", None) if module is not None else None
    return table.get(task.name) if isinstance(table, Mapping) else None


def task_patterns(task: Task, repo: str | None = None) -> list[str] | None:
    """The glob patterns of the files ``task`` reads from dataset ``repo`` (None: unknown, take all files)."""
    entry = _pattern_table(task)
    if not entry:
        return None
    if not isinstance(entry, Mapping):
        return [str(p) for p in entry]
    by_repo = {str(k).lower(): [str(p) for p in v] for k, v in entry.items()}
    if repo and repo.lower() in by_repo:
        return by_repo[repo.lower()]
    raise UsageError(f"task {task.name} knows the layouts of {', '.join(entry)}, not of {repo}; pass --repo")


def detect_repo(task: Task, root: Path) -> str | None:
    """For a task with per-repository layouts: the first repository whose patterns all match under ``root``."""
    entry = _pattern_table(task)
    if not isinstance(entry, Mapping):
        return None
    files = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
    for repo, patterns in entry.items():
        if not _unmatched(files, [str(p) for p in patterns]):
            return str(repo)
    return None


def matches(relative: str, patterns: Sequence[str]) -> bool:
    """Whether a '/'-separated path matches one of the patterns (fnmatch, as the hub's allow_patterns)."""
    return any(fnmatch.fnmatchcase(relative, p) for p in patterns)


# ---------------------------------------------------------------------------------------------
# Sources


def hub_snapshot(repo: str, revision: str | None, patterns: Sequence[str] | None) -> Snapshot:
    """Download the files of ``repo`` matching ``patterns`` at the commit ``revision`` resolves to."""
    try:
        from huggingface_hub import HfApi, snapshot_download
        from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError
    except ImportError as exc:
        raise HarnessError("--source hf needs huggingface_hub: pip install 'tinyllava-harness[data]'") from exc
    wanted = revision or HUB_DEFAULT_REVISION
    try:
        info = HfApi().dataset_info(repo, revision=wanted)
        if not info.sha:
            raise HarnessError(f"the hub returned no commit for {repo}@{wanted}")
        path = snapshot_download(
            repo_id=info.id or repo,
            repo_type="dataset",
            revision=info.sha,
            allow_patterns=list(patterns) if patterns else None,
        )
    except GatedRepoError as exc:
        raise HarnessError(f"{repo} is gated: accept its terms on the hub and log in (hf auth login)") from exc
    except RevisionNotFoundError as exc:
        raise UsageError(f"--revision {wanted}: no such branch, tag or commit in dataset {repo}") from exc
    except RepositoryNotFoundError as exc:
        raise UsageError(
            f"dataset {repo} not found on the Hugging Face hub (or private); pass --repo ID "
            "(lmms-lab's eval copies moved to lmms-lab-encoder, lmms-eval PR #1416)"
        ) from exc
    except Exception as exc:
        if not _network_error(exc):
            raise
        text = str(exc).strip()
        reason = f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__
        raise HarnessError(
            f"cannot download {repo}@{wanted} from the Hugging Face hub: it is unreachable ({reason}); "
            "on a machine with network run "
            f"`hf download {repo} --repo-type dataset --revision {wanted} --local-dir DIR`, "
            "copy DIR here and pass --source DIR"
        ) from exc
    resolved = info.id if info.id and info.id != repo else None
    return Snapshot(Path(str(path)), repo, wanted, info.sha, resolved)


_NETWORK_PACKAGES = {"httpx", "httpx2", "httpcore", "requests", "urllib3"}


def _network_error(exc: BaseException) -> bool:
    """Whether ``exc`` means the hub could not be reached: an OSError (offline mode, sockets, ``requests``)
    or a transport error of the HTTP client huggingface_hub uses (httpx, whose errors are not OSErrors)."""
    if isinstance(exc, OSError):
        return True
    return any(cls.__module__.split(".")[0] in _NETWORK_PACKAGES for cls in type(exc).__mro__)


def local_snapshot(path: Path, repo: str | None) -> Snapshot:
    """A folder given on the command line; a hub cache folder ``.../snapshots/<commit>`` keeps its commit."""
    if not path.is_dir():
        raise UsageError(f"--source: '{path}' is not a directory (use 'hf' or a downloaded snapshot folder)")
    resolved = path.resolve()
    commit = resolved.name if resolved.parent.name == "snapshots" and _COMMIT.match(resolved.name) else LOCAL
    return Snapshot(resolved, repo, LOCAL, commit)


def resolve_source(task: Task, source: str, revision: str | None, repo: str | None) -> Snapshot:
    """``--source hf`` (the hub) or ``--source DIR`` (a local snapshot) for ``task``."""
    repo_id = repo or task.hf_dataset
    if source == "hf":
        if not repo_id:
            raise UsageError(f"task {task.name} has no Hugging Face dataset (hf_dataset unset); pass --repo ID")
        patterns = task_patterns(task, repo_id)
        if not patterns:
            raise UsageError(
                f"task {task.name} names no files of {repo_id} (HF_PATTERNS in its prepare module); "
                "download what it needs yourself and pass --source DIR"
            )
        return hub_snapshot(repo_id, revision, patterns)
    if revision:
        raise UsageError("--revision applies to --source hf only; a local --source is used as it is")
    path = Path(source).expanduser()
    if not repo and path.is_dir():
        repo_id = detect_repo(task, path) or repo_id
    return local_snapshot(path, repo_id)


# ---------------------------------------------------------------------------------------------
# Files used


def _unmatched(relatives: Sequence[str], patterns: Sequence[str]) -> list[str]:
    """The patterns that match none of the relative paths."""
    return [pat for pat in patterns if not any(fnmatch.fnmatchcase(r, pat) for r in relatives)]


def source_files(snapshot: Snapshot, patterns: Sequence[str] | None) -> list[Path]:
    """The files of the snapshot a prepare reads: those matching the task's patterns (all without patterns).

    Each pattern must match at least one file; the error names every pattern that matched none.
    """
    root = snapshot.path
    files = sorted(p for p in root.rglob("*") if p.is_file() and not _hidden(p.relative_to(root)))
    if not patterns:
        return files
    files = [p for p in files if matches(p.relative_to(root).as_posix(), patterns)]
    unmatched = _unmatched([p.relative_to(root).as_posix() for p in files], patterns)
    if unmatched:
        where = snapshot.repo or "the dataset"
        raise DataError(f"{root}: missing parquet files of {where}: nothing matches {', '.join(unmatched)}")
    return files


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def sha256_file(path: Path, progress: Progress | None = None, task_id: Any = None) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
            if progress is not None:
                progress.advance(task_id, len(chunk))
    return digest.hexdigest()


def describe_files(root: Path, files: Sequence[Path], progress: Progress | None) -> list[dict[str, Any]]:
    """Name (relative to the snapshot), size and sha256 of each file, hashed under the progress display."""
    task_id = None
    if progress is not None:
        task_id = progress.add_task("hashing source files", total=sum(p.stat().st_size for p in files))
    return [
        {
            "name": path.relative_to(root).as_posix(),
            "bytes": path.stat().st_size,
            "sha256": sha256_file(path, progress, task_id),
        }
        for path in files
    ]


# ---------------------------------------------------------------------------------------------
# Running a prepare


@dataclass
class PrepareReport:
    sources_file: Path
    n_samples: int
    missing: list[str]
    notes: list[str]


def resolve_prepare_root(flag: str | None) -> Path:
    """``--data-root`` (else ``$HARNESS_DATA_ROOT``), created when missing."""
    value = flag or os.environ.get("HARNESS_DATA_ROOT")
    if not value:
        raise UsageError("data prepare needs --data-root DIR (or HARNESS_DATA_ROOT): where to write the files")
    root = Path(value).expanduser()
    if root.exists() and not root.is_dir():
        raise UsageError(f"--data-root: '{value}' is not a directory")
    root.mkdir(parents=True, exist_ok=True)
    return root.resolve()


@contextlib.contextmanager
def prepare_log(progress: Progress | None) -> Iterator[PrepareLog]:
    """Collect the notes (and drive the progress display) of the prepare running inside."""
    log = PrepareLog(progress)
    token = _LOG.set(log)
    try:
        yield log
    finally:
        _LOG.reset(token)


def _new_progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def _check_prepared(task: Task, root: Path) -> tuple[int, list[str]]:
    """Sample count of the written files (loaded by the task) and the data files still missing."""
    from harness.data.check import check_task

    missing = [st.spec.path for st in check_task(task, root, "run") if not st.present]
    try:
        samples = task.load(root)
    except HarnessError as exc:
        raise DataError(f"the files prepared for {task.name} under {root} do not load: {exc}") from exc
    return len(samples), missing


def sources_record(
    task: Task, snapshot: Snapshot, files: list[dict[str, Any]], n_samples: int, missing: list[str], notes: list[str]
) -> dict[str, Any]:
    return {
        "task": task.name,
        "task_version": task.version,
        "repo": snapshot.repo,
        "resolved_repo": snapshot.resolved_repo,
        "revision": snapshot.revision,
        "commit": snapshot.commit,
        "source": "hf" if snapshot.revision != LOCAL else str(snapshot.path),
        "files": files,
        "samples": n_samples,
        "missing": missing,
        "limitations": notes,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def write_sources(root: Path, record: Mapping[str, Any]) -> Path:
    path = root / SOURCES_DIR / f"{record['task']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def prepare_task(
    task: Task,
    source: str,
    root: Path,
    revision: str | None = None,
    repo: str | None = None,
    console: Console | None = None,
    show_progress: bool = True,
) -> PrepareReport:
    """Resolve the source, build the task's files under ``root``, check them, write the sources record."""
    console = console or Console(stderr=True)
    snapshot = resolve_source(task, source, revision, repo)
    (root / SOURCES_DIR / f"{task.name}.json").unlink(missing_ok=True)  # no stale record if this run fails
    progress = _new_progress(console) if show_progress else None
    with progress or contextlib.nullcontext(), prepare_log(progress) as log:
        files = source_files(snapshot, task_patterns(task, snapshot.repo))
        described = describe_files(snapshot.path, files, progress)
        task.prepare(snapshot.path, root)
        n_samples, missing = _check_prepared(task, root)
    for path in missing:
        log.notes.append(f"not written: {path} (not in this dataset copy)")
    record = sources_record(task, snapshot, described, n_samples, missing, log.notes)
    return PrepareReport(write_sources(root, record), n_samples, missing, log.notes)


# ---------------------------------------------------------------------------------------------
# Helpers for prepare modules


def note(text: str) -> None:
    """Record a limitation of the prepared files (kept in the sources record; no-op outside a prepare)."""
    log = _LOG.get()
    if log is not None and text not in log.notes:
        log.notes.append(text)


def find_files(source: Path, patterns: Sequence[str], what: str) -> list[Path]:
    """Files under ``source`` matching ``patterns`` (sorted); none at all is an error naming what was expected."""
    source = Path(source)
    found = sorted(
        p for p in source.rglob("*") if p.is_file() and matches(p.relative_to(source).as_posix(), patterns)
    )
    if not found:
        raise DataError(f"{source}: no {what} (expected files matching {', '.join(patterns)})")
    return found


def _parquet():
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise HarnessError("reading parquet files needs pyarrow: pip install 'tinyllava-harness[data]'") from exc
    return pq


def parquet_columns(path: Path) -> list[str]:
    """Top-level column names of a parquet file."""
    try:
        return list(_parquet().read_schema(path).names)
    except OSError as exc:
        raise DataError(f"{path}: not a readable parquet file ({exc})") from exc


def require_columns(paths: Sequence[Path], columns: Sequence[str]) -> None:
    """Every file has every column; the error names the file and the missing columns."""
    for path in paths:
        have = set(parquet_columns(path))
        lacking = [c for c in columns if c not in have]
        if lacking:
            raise DataError(f"{path}: missing column(s) {', '.join(lacking)} (has: {', '.join(sorted(have))})")


def count_rows(paths: Sequence[Path]) -> int:
    pq = _parquet()
    return sum(pq.ParquetFile(p).metadata.num_rows for p in paths)


def iter_rows(
    paths: Sequence[Path], what: str, columns: Sequence[str] | None = None
) -> Iterator[tuple[str, dict[str, Any]]]:
    """(``file row N``, row as plain Python values) for every row of the files, in order, with progress.

    ``columns`` limits what is read (a missing one is an error naming the file). Image columns come
    back as the ``datasets`` Image struct, a dict with ``bytes`` and ``path``.
    """
    if columns is not None:
        require_columns(paths, columns)
    log = _LOG.get()
    progress = log.progress if log is not None else None
    task_id = progress.add_task(what, total=count_rows(paths)) if progress is not None else None
    for path in paths:
        handle = _parquet().ParquetFile(path)
        index = 0
        for batch in handle.iter_batches(batch_size=_ROW_BATCH, columns=list(columns) if columns else None):
            for row in batch.to_pylist():
                yield f"{path.name} row {index}", row
                index += 1
            if progress is not None:
                progress.advance(task_id, batch.num_rows)


def image_bytes(value: Any, where: str) -> bytes:
    """The encoded image of a ``datasets`` Image value ({"bytes": ..., "path": ...}) or raw bytes."""
    if isinstance(value, Mapping):
        data = value.get("bytes")
    else:
        data = value
    if isinstance(data, bytes | bytearray) and data:
        return bytes(data)
    raise DataError(f"{where}: image has no embedded bytes (got {type(data).__name__})")


def image_format(data: bytes) -> str:
    """"jpeg", "png" or "other", from the magic bytes."""
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    return "other"


def write_file(path: Path, data: bytes | str) -> None:
    """Write bytes (or UTF-8 text, newlines as given) to ``path``, creating its folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)


def write_jsonl(path: Path, records: Sequence[Mapping[str, Any]]) -> None:
    """One ``json.dumps`` line per record (ASCII escapes, as LLaVA's question files)."""
    write_file(path, "".join(json.dumps(r) + "\n" for r in records))
