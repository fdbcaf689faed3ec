"""A results store with a few runs for the leaderboard tests (session-scoped: built once).

Real ``harness run``s on the demo data (GQA and MME, 40 samples each) of two "models" served by a
scripted OpenAI-compatible server on 127.0.0.1 (the same answers every time: a strong one that is
mostly right and a weak one that is mostly wrong), one with the name ``<script>alert(1)</script>``,
plus runs recorded from copies of those results: one labelled as a real-data run of a 3.1B Phi model
dated 2025-01-15, and a training run of three checkpoints (steps 100, 200, 300) whose step 200 is
the weak model's answers (a regression).
"""

from __future__ import annotations

import hashlib
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from harness.results.schema import RunDirectory, RunResult, load_results
from harness.results.store import ResultsStore, default_store_url
from tests.helpers.paths import REPO

TASKS = "gqa,mme"
LIMIT = 40
SCRIPT_NAME = "<script>alert(1)</script>"
TRAINING_RUN = "/train/demo-recipe"


@dataclass
class BoardStore:
    root: Path  # the results root: run directories and the SQLite store
    url: str
    strong: str = ""
    weak: str = ""
    script: str = ""
    real: str = ""
    steps: dict[int, str] = field(default_factory=dict)  # training step -> run id

    @property
    def run_ids(self) -> list[str]:
        return [self.strong, self.weak, self.script, self.real, *self.steps.values()]


def _bucket(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest(), 16) % 10


def answer_key() -> dict[str, str]:
    """Each demo question's most common answer (questions repeat over images)."""
    from harness.data.demo import ensure_demo_root
    from harness.registry import get_tasks

    tasks = get_tasks(TASKS)
    root = ensure_demo_root(tasks)
    counts: dict[str, Counter] = {}
    for task in tasks:
        for sample in task.load(root):
            counts.setdefault(sample.question, Counter())[str(sample.target)] += 1
    return {q: c.most_common(1)[0][0] for q, c in counts.items()}


def scripted(key: dict[str, str], right_buckets: int) -> Callable[[str], str]:
    """Replies right for questions in the first ``right_buckets`` of 10 hash buckets, wrong otherwise;
    one MME question in 10 gets an unreadable reply (a parse failure)."""

    def reply(prompt: str) -> str:
        for question, target in key.items():
            if question in prompt:
                b = _bucket(question)
                if target in ("Yes", "No") and b == 9:
                    return "It is hard to say."
                if b < right_buckets:
                    return target
                return {"Yes": "No", "No": "Yes"}.get(target, "purple elephant")
        return "no idea"

    return reply


def scripted_run(root: Path, url: str, name: str, reply: Callable[[str], str], fail_first: bool = False) -> RunResult:
    from harness.run.evaluate import RunOptions, run
    from tests.helpers.replay_server import ReplayServer

    server = ReplayServer(replies=reply, model_id=name).start()
    args = f"base_url={server.url},retries=0"
    if fail_first:
        # The first request to arrive fails (an error sample). One call in flight makes that the first
        # sample of the first batch every time; with several, whichever call won the race would fail.
        server.failures.append("500")
        args += ",concurrency=1"
    try:
        return run(RunOptions(
            tasks=TASKS, model=f"openai:{name}", model_args=args, limit=LIMIT,
            output_dir=str(root), store=url, show_progress=False, use_cache=False, batch_size=8,
        ))  # fmt: skip
    finally:
        server.close()


def record_copy(root: Path, url: str, source: RunResult, run_id: str, edit: Callable[[RunResult], None]) -> str:
    """A new run directory holding ``source``'s samples logs, its results edited, recorded in the store."""
    shutil.copytree(root / source.run_id, root / run_id)
    result = load_results(root / run_id).model_copy(deep=True)
    result.run_id = run_id
    edit(result)
    RunDirectory(root, run_id).write_results(result)
    store = ResultsStore(url)
    store.record(result, root / run_id)
    store.close()
    return run_id


def _as_real(result: RunResult) -> None:
    assert result.model is not None
    result.data.is_demo = False
    result.created, result.finished = "2025-01-15T10:00:00+00:00", "2025-01-15T10:05:00+00:00"
    result.model.name = "TinyLLaVA-Phi-2-SigLIP-3.1B-repro"
    result.model.llm, result.model.vision_tower, result.model.n_parameters = "phi", "siglip", 3_100_000_000


def _at_step(step: int) -> Callable[[RunResult], None]:
    def edit(result: RunResult) -> None:
        assert result.model is not None
        result.model.name = f"checkpoint-{step}"
        result.model.details.update(training_step=step, training_run=TRAINING_RUN)

    return edit


def build_board_store(root: Path) -> BoardStore:
    url = default_store_url(root)
    key = answer_key()
    out = BoardStore(root=root, url=url)
    strong = scripted_run(root, url, "scripted-strong", scripted(key, 8), fail_first=True)
    weak = scripted_run(root, url, "scripted-weak", scripted(key, 3))
    script = scripted_run(root, url, SCRIPT_NAME, scripted(key, 5))
    out.strong, out.weak, out.script = strong.run_id, weak.run_id, script.run_id
    out.real = record_copy(root, url, strong, "20250115-100000-repro-real", _as_real)
    for step, source in ((100, strong), (200, weak), (300, strong)):
        out.steps[step] = record_copy(root, url, source, f"train-step-{step}", _at_step(step))
    return out


@pytest.fixture(scope="session")
def board_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BoardStore]:
    yield build_board_store(tmp_path_factory.mktemp("board") / "results")


APP = str(REPO / "leaderboard" / "app.py")


def open_app(monkeypatch: pytest.MonkeyPatch, url: str, page: str | None = None, timeout: float = 60) -> AppTest:
    """The leaderboard app on the store at ``url`` (optionally switched to ``pages/<page>.py``), run once."""
    monkeypatch.setenv("HARNESS_STORE_URL", url)
    at = AppTest.from_file(APP, default_timeout=timeout)
    at.run()
    if page is not None:
        at.switch_page(f"pages/{page}.py")
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at
