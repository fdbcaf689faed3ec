"""What a result must say about where it came from: code revision, packages, hardware."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

_PACKAGES = (
    "tinyllava-harness",
    "torch",
    "transformers",
    "tokenizers",
    "accelerate",
    "safetensors",
    "numpy",
    "pillow",
    "pydantic",
    "SQLAlchemy",
    "deepspeed",
    "peft",
    "flash-attn",
    "openai",
)


class GitInfo(BaseModel):
    commit: str | None = None
    branch: str | None = None
    dirty: bool | None = None


class Environment(BaseModel):
    python: str
    platform: str
    packages: dict[str, str]
    hardware: dict[str, Any] = Field(default_factory=dict)


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_info(source_dir: Path | None = None) -> GitInfo:
    """Commit, branch and dirty flag of the harness's own source tree (None outside a checkout)."""
    cwd = source_dir or Path(__file__).resolve().parent.parent
    commit = _git(["rev-parse", "HEAD"], cwd)
    if commit is None:
        return GitInfo()
    status = _git(["status", "--porcelain", "--untracked-files=no"], cwd)
    return GitInfo(
        commit=commit,
        branch=_git(["rev-parse", "--abbrev-ref", "HEAD"], cwd),
        dirty=bool(status) if status is not None else None,
    )


def package_versions() -> dict[str, str]:
    found: dict[str, str] = {}
    for name in _PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def hardware() -> dict[str, Any]:
    info: dict[str, Any] = {
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        info["memory_gib"] = round(pages * page_size / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    torch = sys.modules.get("torch")
    if torch is not None:
        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            info["cuda"] = torch.version.cuda
    return info


def environment() -> Environment:
    return Environment(
        python=sys.version.split()[0],
        platform=platform.platform(),
        packages=package_versions(),
        hardware=hardware(),
    )
