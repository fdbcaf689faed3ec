"""End to end: ``python -m harness leaderboard`` on 127.0.0.1, driven in headless Chromium with Playwright.

The board lists the runs, a filter changes it, compare shows a significant delta with the changed
samples' images, and a run named ``<script>alert(1)</script>`` shows as that text while no dialog
ever opens. Screenshots go to ``test-artifacts/`` (path printed).

Needs Debian's Chromium at /usr/bin/chromium and the playwright package (never ``playwright install``);
CI installs both and sets HARNESS_REQUIRE_BROWSER=1, which turns a missing browser into a failure.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.leaderboard_fixtures import SCRIPT_NAME, BoardStore
from tests.helpers.paths import REPO as REPO_ROOT

pytestmark = pytest.mark.slow

ROOT = REPO_ROOT
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def _require_browser() -> None:
    missing = []
    if not Path(CHROMIUM).is_file():
        missing.append(f"{CHROMIUM} (apt-get install chromium)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        missing.append("the playwright package (pip install -e '.[dev]')")
    if missing:
        message = "browser test needs " + " and ".join(missing)
        if os.environ.get("HARNESS_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _healthy(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False


@pytest.fixture
def board_server(board_store: BoardStore, tmp_path: Path) -> Iterator[str]:
    """The leaderboard served by ``python -m harness leaderboard`` on a free port of 127.0.0.1."""
    _require_browser()
    port = _free_port()
    log = (tmp_path / "leaderboard.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "leaderboard", "--store", board_store.url, "--host", "127.0.0.1",
         "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while not _healthy(base):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"leaderboard did not start: {(tmp_path / 'leaderboard.log').read_text()[-2000:]}")
            time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _metric(page, label: str):  # type: ignore[no-untyped-def]
    return page.get_by_test_id("stMetric").filter(has_text=label).get_by_test_id("stMetricValue")


def _open_page(page, link: str, title: str) -> None:  # type: ignore[no-untyped-def]
    """Follow a navigation link and wait for the new page's title (the old page's widgets linger as stale)."""
    page.get_by_role("link", name=link).click()
    page.get_by_role("heading", name=title, exact=True).wait_for()


def _choose(page, label: str, text: str) -> None:  # type: ignore[no-untyped-def]
    """Pick the option containing ``text`` in the select box whose label is exactly ``label``."""
    label_el = page.get_by_test_id("stWidgetLabel").get_by_text(label, exact=True)
    page.get_by_test_id("stSelectbox").filter(has=label_el).click()
    page.keyboard.type(text)
    page.get_by_role("option").filter(has_text=text).first.click()


def test_board_filter_compare_and_inert_names_in_chromium(board_server: str, board_store: BoardStore,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=30_000)  # the first render (store, frames, paper rows) can take a few seconds

    ARTIFACTS.mkdir(exist_ok=True)
    shots = {name: ARTIFACTS / f"leaderboard-{name}.png" for name in ("board", "filtered", "compare", "details")}
    dialogs: list[str] = []
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            tempfile.mkdtemp(prefix="chromium-profile-"), executable_path=CHROMIUM, headless=True, args=FLAGS,
            viewport={"width": 1600, "height": 1000},
        )  # fmt: skip
        try:
            page = context.new_page()
            page.set_default_timeout(30_000)
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

            page.goto(board_server)
            expect(_metric(page, "Runs shown")).to_have_text("7")
            expect(_metric(page, "Paper rows shown")).to_have_text("8")
            grid, demo_grid = page.get_by_test_id("stDataFrame").first, page.get_by_test_id("stDataFrame").nth(1)
            expect(grid).to_contain_text("LLaVA-1.5-13B")
            expect(demo_grid).to_contain_text("scripted-strong")  # demo rows apart from the paper rows
            expect(grid).not_to_contain_text("scripted-strong")
            for table in (grid, demo_grid):  # empty cells (no step, no date, no interval) are not "None"
                expect(table).not_to_contain_text("None")
            page.screenshot(path=str(shots["board"]), full_page=True)

            box = page.get_by_label("Model or run id contains")
            box.fill("checkpoint")
            box.press("Enter")
            expect(_metric(page, "Runs shown")).to_have_text("3")
            expect(_metric(page, "Paper rows shown")).to_have_text("0")
            grid = page.get_by_test_id("stDataFrame").first  # no benchmark row left: the demo table only
            expect(grid).to_contain_text("checkpoint-200")
            expect(grid).not_to_contain_text("scripted-strong")
            page.screenshot(path=str(shots["filtered"]), full_page=True)

            _open_page(page, "Compare", "Compare two runs")
            _choose(page, "Run A (baseline)", "scripted-strong")
            _choose(page, "Run B", "scripted-weak")
            expect(_metric(page, "Significantly worse")).to_have_text("3")
            expect(page.get_by_test_id("stImage").first).to_be_visible()
            expect(page.get_by_text("purple elephant").first).to_be_visible()
            page.screenshot(path=str(shots["compare"]), full_page=True)

            _open_page(page, "Run details", "Run details")
            _choose(page, "Run", "alert(1)")
            expect(page.get_by_text(SCRIPT_NAME, exact=True).first).to_be_visible()
            page.screenshot(path=str(shots["details"]), full_page=True)
            injected = page.evaluate(
                "() => [...document.querySelectorAll('script')].some(s => s.textContent.includes('alert(1)'))"
            )
            assert not injected, "the run name became a script element"
        finally:
            context.close()
    assert dialogs == [], f"a dialog fired: {dialogs}"
    with capsys.disabled():
        print(f"\nleaderboard screenshots: {', '.join(str(p) for p in shots.values())}")
