"""A model adapter that cannot load on one rank (``$HARNESS_TEST_FAIL_RANK``, default 1): the demo model elsewhere.

Registered as the ``rankfail`` adapter through a dist-info folder on PYTHONPATH, so a torchrun job in the
tests has one rank fail the way a bad checkpoint or an out-of-memory error would.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from harness.errors import HarnessError
from model_adapters.tinyllava import TinyLlavaAdapter
from tests.helpers.plugins import register_plugin

ENTRY_POINT = "rankfail = tests.helpers.rank_fail_plugin:RankFailAdapter"


def register(site: Path) -> Path:
    """Write a dist-info folder under ``site`` declaring this adapter in the ``harness.models`` group."""
    return register_plugin(site, "rank-fail-plugin", "harness.models", ENTRY_POINT)


class RankFailAdapter(TinyLlavaAdapter):
    name = "rankfail"
    description = "test adapter: the demo model, except on the rank that fails to load it"

    @classmethod
    def from_spec(cls, target: str, args: Mapping[str, str], device: str | None, seed: int) -> TinyLlavaAdapter:
        if os.environ.get("RANK") == os.environ.get("HARNESS_TEST_FAIL_RANK", "1"):
            raise HarnessError(f"cannot load {target} on this rank (test failure)")
        return super().from_spec(target, args, device, seed)
