"""Content hashes of files and folders, memoized across processes by (path, size, mtime).

The memo lives in ``cache_dir()/file-hashes.json``, so a multi-GB checkpoint or annotation file is
read once per change, not once per run.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness.paths import cache_dir

MEMO_FILE = "file-hashes.json"
_CHUNK = 1 << 23


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's content, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class HashMemo:
    """File digests remembered across processes in a JSON file (best effort, atomic writes)."""

    def __init__(self, memo_path: Path | None = None) -> None:
        self.path = memo_path or cache_dir() / MEMO_FILE
        self._entries = self._load()
        self._dirty = False

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def digest(self, path: Path) -> str:
        """The file's sha256, recomputed only when its size or mtime changed."""
        key = str(Path(path).absolute())
        st = Path(path).stat()
        entry = self._entries.get(key)
        if isinstance(entry, dict) and entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns:
            return str(entry["sha256"])
        value = sha256_file(path)
        self._entries[key] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": value}
        self._dirty = True
        return value

    def save(self) -> None:
        """Write the memo back (merged with what other processes wrote meanwhile); errors are ignored."""
        if not self._dirty:
            return
        merged = {**self._load(), **self._entries}
        try:
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".file-hashes-", suffix=".tmp")
            with os.fdopen(fd, "w") as handle:
                json.dump(merged, handle, indent=0, sort_keys=True)
            os.chmod(tmp, 0o644)  # mkstemp makes it private; the cache may be shared
            os.replace(tmp, self.path)
            self._dirty = False
        except OSError:
            pass


def tree_digest(paths: Iterable[tuple[str, Path]]) -> str:
    """One digest over named files and folders (folders: every file inside, by relative name)."""
    memo = HashMemo()
    digest = hashlib.sha256()
    for name, path in sorted(paths, key=lambda item: item[0]):
        path = Path(path)
        if path.is_dir():
            for sub in sorted(p for p in path.rglob("*") if p.is_file()):
                digest.update(f"{name}/{sub.relative_to(path).as_posix()}\0{memo.digest(sub)}\n".encode())
        elif path.is_file():
            digest.update(f"{name}\0{memo.digest(path)}\n".encode())
        else:
            digest.update(f"{name}\0missing\n".encode())
    memo.save()
    return digest.hexdigest()
