"""Which files a task needs under the data root, a check that names every missing one, and loading a task's
samples from the files a purpose needs.

Purposes: ``score`` needs the files the official scorer reads (``DataFile.needed_for == "score"``);
``requests`` adds the run-only files that are not folders (what rebuilding a run's requests reads: LLaVA's
question files, never the images); ``run`` needs everything.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from harness.errors import DataError, UsageError
from harness.hashing import tree_digest
from harness.task import Task
from harness.types import DataFile, Sample

Purpose = Literal["score", "requests", "run"]


@dataclass
class FileStatus:
    task: str
    spec: DataFile
    path: Path
    present: bool
    detail: str  # size, or number of entries for a folder


def resolve_data_root(flag: str | None) -> Path | None:
    """``--data-root``, else ``$HARNESS_DATA_ROOT``, else None (the caller may use the demo root)."""
    for value, source in ((flag, "--data-root"), (os.environ.get("HARNESS_DATA_ROOT"), "HARNESS_DATA_ROOT")):
        if value:
            root = Path(value).expanduser()
            if not root.is_dir():
                raise UsageError(f"{source}: '{value}' is not a directory")
            return root.resolve()
    return None


def _needed(spec: DataFile, purpose: Purpose) -> bool:
    if purpose == "requests":
        return spec.needed_for == "score" or spec.kind == "file"
    return purpose == "run" or spec.needed_for == "score"


def check_task(task: Task, root: Path, purpose: Purpose = "run") -> list[FileStatus]:
    statuses: list[FileStatus] = []
    for spec in task.data_files():
        if not _needed(spec, purpose):
            continue
        path = next((root / p for p in [spec.path, *spec.alternatives] if (root / p).exists()), root / spec.path)
        if spec.kind == "dir":
            present = path.is_dir() and any(path.iterdir())
            detail = f"{sum(1 for _ in path.iterdir())} entries" if path.is_dir() else ""
        else:
            present = path.is_file()
            detail = f"{path.stat().st_size:,} bytes" if present else ""
        statuses.append(FileStatus(task.name, spec, path, present, detail))
    return statuses


def require_data(tasks: Sequence[Task], root: Path, purpose: Purpose) -> None:
    """Raise one DataError naming every missing path and where to get it."""
    missing = [s for task in tasks for s in check_task(task, root, purpose) if not s.present]
    if missing:
        parts = [f"{s.path} ({s.task}; get it from: {s.spec.source or 'see harness data'})" for s in missing]
        raise DataError(f"missing data files under {root}: " + "; ".join(parts))


def has_data(task: Task, root: Path, purpose: Purpose) -> bool:
    """Whether ``root`` holds every file ``task`` needs for ``purpose``."""
    return all(s.present for s in check_task(task, root, purpose))


def load_for(task: Task, root: Path, purpose: Purpose) -> list[Sample]:
    """The task's samples for ``purpose``. Scoring reads the run-only files when they are there (``load``) and
    the scorer's files alone otherwise (``load_for_scoring``, where the task has one); the two give the same
    ids, targets and scores. Scoring reads the samples from the sample cache when the data and code are
    unchanged (``harness.data.sample_cache``)."""
    if purpose != "score":
        return task.load(root)
    from harness.data.sample_cache import cached_load

    if not has_data(task, root, "requests"):
        return cached_load(task, root, "load_for_scoring", lambda: data_fingerprint(task, root, "score"),
                           lambda: task.load_for_scoring(root))  # fmt: skip
    return cached_load(task, root, "load", lambda: data_fingerprint(task, root, "run"), lambda: task.load(root))


def data_fingerprint(task: Task, root: Path, purpose: Purpose = "run") -> str:
    """Digest of the files ``purpose`` reads, image folders left out: for a run, the annotation and question
    files; for ``score``, the files the official scorer reads (the same whether a question file is there)."""
    named = [
        (p, root / p)
        for spec in task.data_files()
        if _needed(spec, "score" if purpose == "score" else "requests")
        for p in [spec.path, *spec.alternatives]
        if p == spec.path or (root / p).exists()
    ]
    return tree_digest(named)
