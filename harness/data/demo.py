"""The built-in demo default: a synthetic data root (each task's own demo writer) and a tiny model.

Demo results are labelled as demo everywhere: a marker file makes a root a demo root, and the
demo model's adapter reports ``is_demo``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from harness.errors import HarnessError
from harness.paths import cache_dir
from harness.task import Task

DEMO_DATA_VERSION = 1
DEMO_SEED = 0
DEMO_MODEL_SPEC = "tinyllava:demo"
MARKER = "HARNESS_DEMO_DATA.json"


def is_demo_root(root: Path) -> bool:
    return (Path(root) / MARKER).is_file()


def _read_marker(root: Path) -> dict[str, str]:
    try:
        return dict(json.loads((root / MARKER).read_text())["tasks"])
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def ensure_demo_root(tasks: Sequence[Task], seed: int = DEMO_SEED) -> Path:
    """The demo data root with every requested task's data, generated on first use.

    A task whose version changed since generation is regenerated. The root is built in a temporary
    folder and renamed into place, so an interrupted build never leaves a half-written root.
    """
    root = cache_dir() / f"demo-data-v{DEMO_DATA_VERSION}-seed{seed}"
    have = _read_marker(root)
    wanted = {t.name: t.version for t in tasks}
    if all(have.get(name) == version for name, version in wanted.items()):
        return root
    from harness.registry import get_task

    keep = {name: ver for name, ver in have.items() if name not in wanted}
    build: list[Task] = list(tasks)
    for name in keep:
        try:
            build.append(get_task(name))
        except HarnessError:
            continue
    tmp = Path(tempfile.mkdtemp(prefix=".demo-build-", dir=cache_dir()))
    try:
        for task in build:
            task.write_demo(tmp, seed)
        marker = {"generator": "tinyllava-harness demo", "version": DEMO_DATA_VERSION, "seed": seed,
                  "tasks": {t.name: t.version for t in build}}
        (tmp / MARKER).write_text(json.dumps(marker, indent=2))
        old = root.with_name(f".{root.name}.old-{os.getpid()}")
        if root.exists():
            os.replace(root, old)
        os.replace(tmp, root)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root
