"""Find task plugins and model adapters through entry points (``harness.tasks``, ``harness.models``).

Third-party packages register their own by declaring entry points in those groups.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

from harness.adapter import ModelAdapter
from harness.errors import HarnessError, UsageError
from harness.task import Task

TASK_GROUP = "harness.tasks"
MODEL_GROUP = "harness.models"


@cache
def _entry_points(group: str) -> dict[str, object]:
    found = {ep.name: ep for ep in entry_points(group=group)}
    if not found:
        raise HarnessError(
            f"no plugins registered in entry-point group '{group}': install the project (pip install -e .)"
        )
    return dict(sorted(found.items()))


def task_names() -> list[str]:
    return list(_entry_points(TASK_GROUP))


def model_names() -> list[str]:
    return list(_entry_points(MODEL_GROUP))


def get_task(name: str) -> Task:
    points = _entry_points(TASK_GROUP)
    if name not in points:
        raise UsageError(f"unknown task '{name}'; valid tasks: {', '.join(points)}")
    cls = points[name].load()  # type: ignore[attr-defined]
    return cls()


def get_tasks(spec: str) -> list[Task]:
    """Tasks from a comma-separated list; every unknown name is reported at once."""
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if not names:
        raise UsageError("--tasks is empty; valid tasks: " + ", ".join(task_names()))
    unknown = [n for n in names if n not in _entry_points(TASK_GROUP)]
    if unknown:
        raise UsageError(f"unknown task(s) {', '.join(unknown)}; valid tasks: {', '.join(task_names())}")
    seen: list[str] = []
    for n in names:
        if n not in seen:
            seen.append(n)
    return [get_task(n) for n in seen]


def get_adapter_class(name: str) -> type[ModelAdapter]:
    points = _entry_points(MODEL_GROUP)
    if name not in points:
        raise UsageError(f"unknown model adapter '{name}'; valid adapters: {', '.join(points)}")
    return points[name].load()  # type: ignore[attr-defined,no-any-return]


def parse_model_spec(spec: str) -> tuple[str, str]:
    """``"tinyllava:/path"`` -> ("tinyllava", "/path"); the target may itself contain colons."""
    name, sep, target = spec.partition(":")
    if not sep or not name or not target:
        raise UsageError(f"--model must look like ADAPTER:TARGET (e.g. tinyllava:/ckpt); got '{spec}'")
    return name, target


def parse_model_args(text: str | None) -> dict[str, str]:
    """``"conv=phi,dtype=float32"`` -> dict; a malformed pair names itself."""
    args: dict[str, str] = {}
    if not text:
        return args
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--model-args entry '{part}' is not KEY=VALUE")
        args[key.strip()] = value.strip()
    return args
