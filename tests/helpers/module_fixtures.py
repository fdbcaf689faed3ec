"""Building blocks of the per-module fixtures that the adapter tests share."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from harness.types import ImageRef


def isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh HARNESS_CACHE_DIR for one test module (yielded while it is set)."""
    cache = tmp_path_factory.mktemp("harness-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HARNESS_CACHE_DIR", str(cache))
        yield cache


def noise_images(folder: Path, sizes: Sequence[tuple[int, int]], seed: int) -> list[ImageRef]:
    """Random RGB PNGs of the given (width, height) sizes in ``folder``: img0.png, img1.png, ..."""
    rng = np.random.default_rng(seed)
    refs = []
    for i, (w, h) in enumerate(sizes):
        path = folder / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)).save(path)
        refs.append(ImageRef(path=str(path)))
    return refs
