"""Which results store the app reads: ``--store URL`` after ``--`` on the streamlit command line,
else ``$HARNESS_STORE_URL``, else the SQLite store of ``./results``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from harness.results.store import default_store_url

STORE_ENV = "HARNESS_STORE_URL"


def store_url(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--store", default=None)
    args, _ = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    return args.store or os.environ.get(STORE_ENV) or default_store_url(Path("results"))
