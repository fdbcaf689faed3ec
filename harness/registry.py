"""Find task plugins and model adapters through entry points (``harness.tasks``, ``harness.models``).

Third-party packages register their own by declaring entry points in those groups.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import sys
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path

from harness.adapter import ModelAdapter
from harness.errors import HarnessError, UsageError
from harness.task import Task

TASK_GROUP = "harness.tasks"
MODEL_GROUP = "harness.models"
_EXTRA_TASKS: dict[str, type[Task]] = {}  # tasks found in --include_path folders


class _Loaded:
    """A class already imported, with the ``load()`` of an entry point."""

    def __init__(self, cls: type) -> None:
        self.cls = cls

    def load(self) -> type:
        return self.cls


@cache
def _installed(group: str) -> dict[str, object]:
    found = {ep.name: ep for ep in entry_points(group=group)}
    if not found:
        raise HarnessError(
            f"no plugins registered in entry-point group '{group}': install the project (pip install -e .)"
        )
    return found


def _entry_points(group: str) -> dict[str, object]:
    found = dict(_installed(group))
    if group == TASK_GROUP:
        found.update({name: _Loaded(cls) for name, cls in _EXTRA_TASKS.items()})
    return dict(sorted(found.items()))


def did_you_mean(word: str, choices: list[str] | tuple[str, ...] | dict) -> str:
    """`` (did you mean 'X'?)`` for the closest of ``choices``, or an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def include_tasks(folder: str | Path) -> list[str]:
    """Import each ``.py`` file of ``folder`` and register the Task subclasses it defines (lmms-eval's
    ``--include_path``); returns the names added. A file that fails to import is one error naming it."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise UsageError(f"--include_path {folder}: not a folder")
    added: list[str] = []
    for path in sorted(root.glob("*.py")):
        module_name = f"harness_included_{abs(hash(str(path.resolve())))}_{path.stem}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[module_name]
            raise UsageError(f"--include_path: {path} failed to import: {type(exc).__name__}: {exc}") from exc
        for value in vars(module).values():
            if (isinstance(value, type) and issubclass(value, Task) and value is not Task
                    and value.__module__ == module_name and getattr(value, "name", "")):  # fmt: skip
                _EXTRA_TASKS[value.name] = value
                added.append(value.name)
    return added


def task_names() -> list[str]:
    return list(_entry_points(TASK_GROUP))


def model_names() -> list[str]:
    return list(_entry_points(MODEL_GROUP))


def get_task(name: str) -> Task:
    points = _entry_points(TASK_GROUP)
    if name not in points:
        raise UsageError(f"unknown task '{name}'{did_you_mean(name, points)}; valid tasks: {', '.join(points)}")
    cls = points[name].load()  # type: ignore[attr-defined]
    return cls()


def get_tasks(spec: str) -> list[Task]:
    """Tasks from a comma-separated list; every unknown name is reported at once."""
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if not names:
        raise UsageError("--tasks is empty; valid tasks: " + ", ".join(task_names()))
    valid = task_names()
    unknown = [n for n in names if n not in valid]
    if unknown:
        hints = "".join(did_you_mean(n, valid) for n in unknown)
        raise UsageError(f"unknown task(s) {', '.join(unknown)}{hints}; valid tasks: {', '.join(valid)}")
    seen: list[str] = []
    for n in names:
        if n not in seen:
            seen.append(n)
    return [get_task(n) for n in seen]


def get_adapter_class(name: str) -> type[ModelAdapter]:
    points = _entry_points(MODEL_GROUP)
    if name not in points:
        hint = did_you_mean(name, points)
        raise UsageError(f"unknown model adapter '{name}'{hint}; valid adapters: {', '.join(points)}")
    return points[name].load()  # type: ignore[attr-defined,no-any-return]


def adapter_description(name: str) -> str:
    """An adapter's ``description``, read from its source when the module is not imported yet (adapters
    import torch, which ``harness list`` should not pay for); imported otherwise."""
    point = _entry_points(MODEL_GROUP).get(name)
    if point is None:
        return get_adapter_class(name).description
    module, _, attr = point.value.partition(":")  # type: ignore[attr-defined]
    if module not in sys.modules:
        text = _class_attribute(module, attr, "description")
        if text is not None:
            return text
    return get_adapter_class(name).description


def _class_attribute(module: str, cls: str, attr: str) -> str | None:
    """The string literal assigned to ``cls.attr`` in ``module``'s source, without importing it."""
    try:
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            return None
        tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    except (ImportError, OSError, SyntaxError, ValueError):
        return None
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == cls:
            for item in node.body:
                targets = item.targets if isinstance(item, ast.Assign) else [item.target] if isinstance(
                    item, ast.AnnAssign) else []  # fmt: skip
                value = getattr(item, "value", None)
                if any(isinstance(t, ast.Name) and t.id == attr for t in targets) and value is not None:
                    try:
                        literal = ast.literal_eval(value)
                    except ValueError:
                        return None
                    return literal if isinstance(literal, str) else None
    return None


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
