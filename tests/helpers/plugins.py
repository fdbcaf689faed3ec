"""Test plugins are registered the way an installed package would be: a dist-info folder on PYTHONPATH."""

from __future__ import annotations

from pathlib import Path


def register_plugin(site: Path, distribution: str, group: str, entry_point: str) -> Path:
    """Write a ``<distribution>-0.1.dist-info`` under ``site`` declaring ``entry_point`` in ``group``."""
    info = site / f"{distribution.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{group}]\n{entry_point}\n")
    return site
