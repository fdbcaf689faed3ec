"""Where the tests find the repository, their own data files and the shared real prediction files."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TEST_DATA = Path(__file__).resolve().parent / "data"
# Real published LLaVA-1.5 prediction files: ../shared/realdata, or $HARNESS_REALDATA (tests skip when absent).
REALDATA = Path(os.environ.get("HARNESS_REALDATA", REPO.parent / "shared" / "realdata"))
