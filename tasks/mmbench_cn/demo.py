"""MMBench-CN demo data: the ``mmbench`` demo questions in ``mmbench/mmbench_dev_cn_20231003.tsv``.

The same synthetic scenes, options and circular copies as ``tasks/mmbench/demo.py`` (legacy layout,
base64 PNGs), with a Chinese hint on the questions that get one. Question and option texts stay
English, so the demo model can still read them; the pipeline, not the language, is what the demo tests.
"""

from __future__ import annotations

from pathlib import Path

from tasks.mmbench.demo import write_tsv

CN_HINT = "图中是纯色背景上的平面图形。"  # "The image shows flat shapes on a plain background."


def write_demo(root: Path, seed: int) -> None:
    """Write ``root/mmbench/mmbench_dev_cn_20231003.tsv``."""
    write_tsv(Path(root) / "mmbench" / "mmbench_dev_cn_20231003.tsv", seed, CN_HINT)
