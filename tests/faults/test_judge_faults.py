"""Judge faults through the real CLI: every misbehaviour of the judge's endpoint ends in a clear message,
the right exit code and a run directory that keeps the answers; nothing writes the API key.

The endpoint is ``tests.helpers.replay_server`` on 127.0.0.1 (HTTP errors, dropped connections, replies
that are HTTP 200 but not a chat completion, a reply that quotes the Authorization header, 429 with
Retry-After). The answers are MM-Vet's, generated once by the demo model with ``--no-judge``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.judging.setup import JudgeOptions, build_judge
from harness.results.schema import load_results
from tests.helpers.paths import REPO
from tests.helpers.replay_server import ReplayServer, replay_server

SECRET = "sk-test-FAULTS-9876543210"


def harness(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPENAI_API_KEY": SECRET}
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], capture_output=True, text=True, timeout=600, env=env, cwd=REPO
    )


@pytest.fixture(scope="module")
def answers(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(samples log, data root) of an MM-Vet run of the demo model on 6 questions, not judged."""
    out = tmp_path_factory.mktemp("mmvet-answers")
    proc = harness("run", "--tasks", "mmvet", "--limit", "6", "--no-judge", "--no-progress", "--output-dir", str(out))
    assert proc.returncode == 0, proc.stderr
    run_dir = next(p for p in out.iterdir() if (p / "results.json").is_file())
    return run_dir / "samples" / "mmvet.jsonl", load_results(run_dir).data.root


def score(answers: tuple[Path, str], url: str, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    log, root = answers
    return harness(
        "score", "mmvet", "--answers", str(log), "--data-root", root, "--output-dir", str(out),
        "--judge", "openai:gpt-4-0613", "--judge-base-url", url, "--judge-retries", "0", "--judge-timeout", "2",
        *extra,
    )  # fmt: skip


def only_run(out: Path) -> Path:
    runs = [p for p in out.iterdir() if (p / "results.json").is_file()]
    assert len(runs) == 1, runs
    return runs[0]


def assert_no_secret(*texts: str, folder: Path) -> None:
    assert all(SECRET not in t for t in texts)
    for path in folder.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"  # nothing listens there any more: connection refused


FAILING = ["500", "close", "html", "null-message", "choices-string", "json-list", "no-choices", "refused"]


@pytest.mark.slow
@pytest.mark.parametrize("failure", FAILING)
def test_a_judge_failing_every_call_fails_the_score(failure: str, answers: tuple[Path, str], tmp_path: Path) -> None:
    out = tmp_path / "out"
    with replay_server(default="0.5") as server:
        server.always = None if failure == "refused" else failure
        proc = score(answers, closed_port_url() if failure == "refused" else server.url, out)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: mmvet: total could not be computed (the judge failed on 6 of 6 gradings)")
    assert "not computed" in proc.stdout and "judge failed on 6 of 6" in proc.stdout
    result = load_results(only_run(out))
    assert result.status == "failed" and result.tasks["mmvet"].metrics["judge_failures"].value == 6
    assert_no_secret(proc.stdout, proc.stderr, folder=out)


@pytest.mark.slow
@pytest.mark.parametrize(("failures", "expected"), [(0, "6 unreadable, 0 failed calls"),
                                                    (2, "4 unreadable, 2 failed calls")])  # fmt: skip
def test_a_judge_whose_grades_are_all_unreadable_gives_no_score(
    failures: int, expected: str, answers: tuple[Path, str], tmp_path: Path
) -> None:
    """MM-Vet scores an unreadable grade 0 (as its grader does); when no grade at all could be read, 0.00 is
    no score: the table says "not computed" and the score fails."""
    out = tmp_path / "out"
    with replay_server(default="I would rather not grade this.") as server:
        server.failures.extend(["500"] * failures)
        proc = score(answers, server.url, out)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last == f"error: mmvet: total could not be computed (no grade of the judge could be read: {expected})"
    assert "not computed" in proc.stdout and "0.00" not in proc.stdout
    assert load_results(only_run(out)).status == "failed"


@pytest.mark.slow
def test_a_judge_failing_some_calls_shows_the_count_beside_the_score(
    answers: tuple[Path, str], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    with replay_server(default="0.5") as server:
        server.failures.extend(["500", "500"])
        proc = score(answers, server.url, out)
    assert proc.returncode == 0, proc.stderr
    assert "judge failed on 2 of 6" in proc.stdout
    assert load_results(only_run(out)).status == "complete"


@pytest.mark.slow
def test_a_judge_echoing_the_key_leaves_it_nowhere(answers: tuple[Path, str], tmp_path: Path) -> None:
    out = tmp_path / "out"
    with replay_server(default="0.5") as server:
        server.always = "echo-key"
        proc = score(answers, server.url, out)
        assert server.requests[0]["headers"]["authorization"] == f"Bearer {SECRET}"
    assert proc.returncode == 0, proc.stderr
    samples = (only_run(out) / "samples" / "mmvet.jsonl").read_text(encoding="utf-8")
    assert "[redacted]" in samples
    assert (out / "cache.sqlite").is_file()  # the judge cache sits beside the run directory: checked too
    assert_no_secret(proc.stdout, proc.stderr, folder=out)


def test_retry_after_is_honoured() -> None:
    """A 429 asking for 1 s is retried after at least that long (the backoff alone would be 10 ms)."""
    with replay_server(default="1") as server:
        server.failures.append("429")
        judge = build_judge(
            JudgeOptions(spec="openai:gpt-4-0613", base_url=server.url, backoff=0.01, retries=2), None
        )
        assert judge is not None
        start = time.perf_counter()
        reply = judge.complete([{"role": "user", "content": "q"}], temperature=0.0, max_tokens=3)
        waited = time.perf_counter() - start
        judge.close()
    assert reply.error is None and reply.text == "1" and len(server.requests) == 2
    assert waited >= 0.9


@pytest.mark.parametrize("failure", ["html", "null-message", "choices-string", "json-list", "no-choices"])
def test_a_reply_that_is_no_chat_completion_is_an_error_not_a_crash(failure: str) -> None:
    with replay_server(default="1") as server:
        server.always = failure
        judge = build_judge(JudgeOptions(spec="openai:gpt-4-0613", base_url=server.url, retries=0), None)
        assert judge is not None
        reply = judge.complete([{"role": "user", "content": "q"}], temperature=0.0, max_tokens=3)
        judge.close()
    assert reply.text == "" and reply.error is not None
    assert "not a chat completion" in reply.error or "no choices" in reply.error
    assert "\n" not in reply.error


def test_the_replay_server_really_misbehaves() -> None:
    """Guard for the matrix above: the fault kinds reach the wire as described."""
    import urllib.request

    with replay_server(default="1") as server:
        server.always = "html"
        request = urllib.request.Request(server.url + "/chat/completions", data=json.dumps({"messages": [
            {"role": "user", "content": "q"}]}).encode(), headers={"Content-Type": "application/json"})  # fmt: skip
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.headers["Content-Type"] == "text/html" and b"<html>" in response.read()
    assert isinstance(server, ReplayServer)
