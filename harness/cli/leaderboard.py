"""``python -m harness leaderboard [--store URL] [--port N] [--host H]``: start the Streamlit app on a store.

The store is created or upgraded to this harness's schema first (the app itself only reads).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from harness.cli.flags import DEFAULT_OUTPUT
from harness.errors import UsageError


def app_path() -> Path:
    """leaderboard/app.py of the installed (or checked-out) leaderboard package."""
    import importlib.util

    spec = importlib.util.find_spec("leaderboard")
    places = [Path(p) for p in (spec.submodule_search_locations or [])] if spec is not None else []
    places.append(Path(__file__).resolve().parents[2] / "leaderboard")
    for place in places:
        if (place / "app.py").is_file():
            return place / "app.py"
    raise UsageError("the leaderboard package is not installed: pip install -e '.[leaderboard]'")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("leaderboard", help="open the leaderboard (Streamlit) on a results store")
    parser.add_argument("--store", default=None, help="results store URL (default: sqlite in --output-dir)")
    parser.add_argument("--output-dir", default=DEFAULT_OUTPUT, help="results root whose store is the default")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    parser.add_argument("--port", type=int, default=8501, help="port to listen on (0: any free port)")
    parser.set_defaults(handler=run_leaderboard)


def streamlit_command(app: Path, host: str, port: int) -> list[str]:
    """The app is told its store through $HARNESS_STORE_URL (a password stays out of the process list)."""
    return [
        sys.executable, "-m", "streamlit", "run", str(app),
        "--server.address", host, "--server.port", str(port), "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
    ]  # fmt: skip


def run_leaderboard(args: argparse.Namespace, argv: Sequence[str] = ()) -> int:
    from harness.results.store import ResultsStore, default_store_url, display_url

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be from 0 to 65535; got {args.port}")
    try:
        import streamlit  # noqa: F401
    except ImportError as exc:
        raise UsageError("leaderboard needs streamlit: pip install -e '.[leaderboard]'") from exc
    url = args.store or default_store_url(Path(args.output_dir))
    ResultsStore(url).close()  # create or migrate, so the read-only app can open it
    port = args.port or _free_port(args.host)
    print(f"leaderboard on {display_url(url)}: http://{args.host}:{port}/  (Ctrl-C stops it)", flush=True)
    env = {**os.environ, "HARNESS_STORE_URL": url}
    command = streamlit_command(app_path(), args.host, port)
    os.execve(command[0], command, env)  # streamlit takes over this process (and its Ctrl-C)
    return 0  # not reached


def _free_port(host: str) -> int:
    import socket

    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
