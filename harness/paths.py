"""Where the harness keeps its caches (demo data, demo model, fingerprints)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$HARNESS_CACHE_DIR``, else ``$XDG_CACHE_HOME/tinyllava-harness``, else ``~/.cache/...``."""
    env = os.environ.get("HARNESS_CACHE_DIR")
    if env:
        path = Path(env)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        path = Path(base) / "tinyllava-harness"
    path.mkdir(parents=True, exist_ok=True)
    return path
