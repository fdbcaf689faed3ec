"""Protocols: named, versioned prompt and generation choices per task, read from TOML data files."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import DataError, UsageError
from harness.task import Task

PROTOCOL_DIR = Path(__file__).parent / "protocols"
DEFAULT_PROTOCOL = "llava15"


@dataclass(frozen=True)
class Protocol:
    name: str
    version: str
    description: str
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)

    def settings_for(self, task: Task) -> dict[str, Any]:
        """The task's section of this protocol, falling back on the task's own defaults."""
        merged = dict(task.default_settings.get(self.name, {}))
        merged.update(self.tasks.get(task.name, {}))
        return merged

    def supports(self, task: Task) -> bool:
        return task.name in self.tasks or self.name in task.default_settings


def available_protocols() -> list[str]:
    return sorted(p.stem for p in PROTOCOL_DIR.glob("*.toml"))


def load_protocol(name: str) -> Protocol:
    path = PROTOCOL_DIR / f"{name}.toml"
    if not path.is_file():
        raise UsageError(f"unknown protocol '{name}'; valid protocols: {', '.join(available_protocols())}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise DataError(f"{path}: malformed TOML: {exc}") from exc
    for key in ("name", "version"):
        if key not in data:
            raise DataError(f"{path}: missing field '{key}'")
    return Protocol(
        name=str(data["name"]),
        version=str(data["version"]),
        description=str(data.get("description", "")),
        tasks={k: dict(v) for k, v in data.get("tasks", {}).items()},
    )
