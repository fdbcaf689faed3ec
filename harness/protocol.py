"""Protocols: named, versioned per-task settings (prompt builder, limits, scorer) read from TOML files.

A protocol is a shipped name (``harness/protocols/<name>.toml``) or a path to a user's ``.toml`` file of the
same form; ``docs/protocols.md`` lists the keys. Files are validated on load; an error is one line naming
the file and the field.
"""

from __future__ import annotations

import copy
import hashlib
import json
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import DataError, UsageError

if TYPE_CHECKING:
    from harness.task import Task

PROTOCOL_DIR = Path(__file__).parent / "protocols"
DEFAULT_PROTOCOL = "llava15"
_TOP_LEVEL = ("name", "version", "description", "defaults", "tasks")


@dataclass(frozen=True)
class Protocol:
    """A loaded protocol: its header, settings for every task (``defaults``), one settings table per task,
    and where it came from."""

    name: str
    version: str
    description: str
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str = ""  # the shipped name, or the path of the user's file
    defaults: dict[str, Any] = field(default_factory=dict)

    @property
    def content_hash(self) -> str:
        """sha256 (first 16 hex digits) of the canonical JSON of name, version, defaults and tasks."""
        content = {"name": self.name, "version": self.version, "tasks": self.tasks}
        if self.defaults:  # a file without defaults hashes as before they existed
            content["defaults"] = self.defaults
        canonical = json.dumps(
            content,
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]

    def own_settings(self, task: Task) -> dict[str, Any]:
        """The task's table in this file, over the file's ``defaults``, over the task's ``default_settings`` for
        this protocol (plugins)."""
        merged = copy.deepcopy(task.default_settings.get(self.name, {}))
        merged.update(copy.deepcopy(self.defaults))
        merged.update(copy.deepcopy(self.tasks.get(task.name, {})))
        return merged

    def settings_for(self, task: Task) -> dict[str, Any]:
        """The settings a task runs with: its table here; a key the table leaves out takes llava15's value."""
        if self.source == DEFAULT_PROTOCOL:
            return self.own_settings(task)
        return {**load_protocol(DEFAULT_PROTOCOL).own_settings(task), **self.own_settings(task)}

    def supports(self, task: Task) -> bool:
        return task.name in self.tasks or self.name in task.default_settings


def available_protocols() -> list[str]:
    """The shipped protocol names."""
    return list(_shipped_names())


@cache
def _shipped_names() -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in PROTOCOL_DIR.glob("*.toml")))


def load_protocol(name_or_path: str | Path) -> Protocol:
    """A shipped protocol by name (cached), or a protocol file by path (``--protocol my.toml``)."""
    text = str(name_or_path)
    if text in _shipped_names():
        return _shipped(text)
    path = Path(text).expanduser()
    if path.is_file():
        return read_protocol_file(path, str(path))
    if path.suffix == ".toml" or len(path.parts) > 1:
        raise UsageError(f"protocol file {text} not found")
    raise UsageError(
        f"unknown protocol '{text}'; valid protocols: {', '.join(available_protocols())} (or a path to a .toml file)"
    )


@cache
def _shipped(name: str) -> Protocol:
    return read_protocol_file(PROTOCOL_DIR / f"{name}.toml", name)


def read_protocol_file(path: Path, source: str) -> Protocol:
    """Parse and validate one protocol file; ``source`` is what results record as its origin."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the protocol file ({exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise DataError(f"{path}: malformed TOML: {_one_line(str(exc))}") from exc
    unknown = [key for key in data if key not in _TOP_LEVEL]
    if unknown:
        raise DataError(f"{path}: unknown field '{unknown[0]}' (a protocol file has {', '.join(_TOP_LEVEL)})")
    return Protocol(
        name=_header_field(data, "name", path),
        version=_header_field(data, "version", path),
        description=_description(data, path),
        tasks=_task_tables(data, path),
        source=source,
        defaults=_defaults_table(data, path),
    )


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _header_field(data: Mapping[str, Any], key: str, path: Path) -> str:
    if key not in data:
        raise DataError(f"{path}: missing field '{key}'")
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value).strip() == "":
        raise DataError(f"{path}: field '{key}' must be a non-empty string, got {value!r}")
    return str(value)


def _description(data: Mapping[str, Any], path: Path) -> str:
    value = data.get("description", "")
    if not isinstance(value, str):
        raise DataError(f"{path}: field 'description' must be a string, got {value!r}")
    return value


def _defaults_table(data: Mapping[str, Any], path: Path) -> dict[str, Any]:
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise DataError(f"{path}: field 'defaults' must be a table ([defaults] section)")
    for key, value in defaults.items():
        _check_setting(path, f"defaults.{key}", key, value)
    return dict(defaults)


def _task_tables(data: Mapping[str, Any], path: Path) -> dict[str, dict[str, Any]]:
    tasks = data.get("tasks", {})
    if not isinstance(tasks, dict):
        raise DataError(f"{path}: field 'tasks' must be a table ([tasks.NAME] sections)")
    for task, table in tasks.items():
        if not isinstance(table, dict):
            raise DataError(f"{path}: field 'tasks.{task}' must be a table, got {table!r}")
        for key, value in table.items():
            _check_setting(path, f"tasks.{task}.{key}", key, value)
    return {task: dict(table) for task, table in tasks.items()}


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_temperature(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _is_tag_pairs(value: Any) -> bool:
    return isinstance(value, list) and all(_is_str_list(v) and len(v) == 2 and all(v) for v in value)


# The type of each setting the shipped tasks read; keys not listed (a plugin's own) are not checked.
_SETTING_TYPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "prompt": (_is_str, "a string (a prompt builder name)"),
    "scorer": (_is_str, "a string (a scorer name)"),
    "pre_prompt": (_is_str, "a string"),
    "post_prompt": (_is_str, "a string"),
    "prediction_processor": (_is_str, "a string"),
    "submission_processor": (_is_str, "a string"),
    "unmatched_without_judge": (lambda v: v in ("wrong", "random"), '"wrong" or "random"'),
    "judge_model": (_is_str, "a string"),
    "max_new_tokens": (_is_positive_int, "a positive integer"),
    "judge_runs": (_is_positive_int, "a positive integer"),
    "judge_max_tokens": (_is_positive_int, "a positive integer"),
    "judge_seed": (_is_int, "an integer"),
    "temperature": (_is_temperature, "a number >= 0"),
    "judge_temperature": (_is_temperature, "a number >= 0"),
    "judge_system": (_is_bool, "true or false"),
    "ocr": (_is_bool, "true or false"),
    "stop": (_is_str_list, "a list of strings"),
    "reasoning_tags": (_is_tag_pairs, 'a list of ["start", "end"] tag pairs'),
}


def _check_setting(path: Path, where: str, key: str, value: Any) -> None:
    check = _SETTING_TYPES.get(key)
    if check is not None and not check[0](value):
        raise DataError(f"{path}: field '{where}' must be {check[1]}, got {value!r}")
