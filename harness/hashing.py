"""Content hashes of files and folders, memoized by (path, size, mtime) so big files are read once."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Iterable
from pathlib import Path

from harness.paths import cache_dir

_LOCK = threading.Lock()
_MEMO_NAME = "file-hashes.json"


def _memo_path() -> Path:
    return cache_dir() / _MEMO_NAME


def _load_memo() -> dict[str, str]:
    try:
        return json.loads(_memo_path().read_text())
    except (OSError, ValueError):
        return {}


def _save_memo(memo: dict[str, str]) -> None:
    path = _memo_path()
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(memo))
        os.replace(tmp, path)
    except OSError:
        pass  # the memo is only an optimisation


def file_digest(path: Path) -> str:
    """sha256 of a file's content, memoized in the cache folder by (absolute path, size, mtime_ns)."""
    path = Path(path).resolve()
    st = path.stat()
    memo_key = f"{path}|{st.st_size}|{st.st_mtime_ns}"
    with _LOCK:
        memo = _load_memo()
        if memo_key in memo:
            return memo[memo_key]
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    value = digest.hexdigest()
    with _LOCK:
        memo = _load_memo()
        memo[memo_key] = value
        _save_memo(memo)
    return value


def tree_digest(paths: Iterable[tuple[str, Path]]) -> str:
    """One digest over named files and folders (folders: every file inside, by relative name)."""
    digest = hashlib.sha256()
    for name, path in sorted(paths, key=lambda item: item[0]):
        path = Path(path)
        if path.is_dir():
            for sub in sorted(p for p in path.rglob("*") if p.is_file()):
                digest.update(f"{name}/{sub.relative_to(path).as_posix()}\0{file_digest(sub)}\n".encode())
        elif path.is_file():
            digest.update(f"{name}\0{file_digest(path)}\n".encode())
        else:
            digest.update(f"{name}\0missing\n".encode())
    return digest.hexdigest()
