"""Judges over OpenAI-compatible endpoints: records, cache keys, retries, keys, and the CLI flags.

The external LLM (GPT-4) is played by ``tests.helpers.replay_server`` (a real HTTP server on 127.0.0.1); the
judge, its cache, the CLI and the tasks are the project's own.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.judging.cache import JudgeCache, JudgeKey
from harness.judging.contract import Judge, JudgeReply, judge_map
from harness.judging.setup import JudgeOptions, OpenAIJudge, build_judge, messages_hash
from harness.results.schema import load_results
from tasks.mmbench.scorer import load_prompt
from tests.helpers.judged_plugin import JudgedEchoTask, register
from tests.helpers.paths import REPO as REPO_ROOT
from tests.helpers.replay_server import ReplayServer, replay_server

SECRET = "sk-test-SECRET-0123456789"
REPO = REPO_ROOT


@pytest.fixture
def replay() -> Iterator[ReplayServer]:
    with replay_server(replies=[("colour", "1"), ("size", "0")], default="0.5") as server:
        yield server


def make_judge(url: str, cache: JudgeCache | None = None, **options: object) -> OpenAIJudge:
    opts = JudgeOptions(spec="openai:gpt-4-0613", base_url=url, backoff=0.01, **options)  # type: ignore[arg-type]
    judge = build_judge(opts, cache)
    assert judge is not None
    return judge


def ask(judge: OpenAIJudge, text: str, run: int = 0, temperature: float = 0.0) -> JudgeReply:
    return judge.complete([{"role": "user", "content": text}], temperature=temperature, max_tokens=3, run=run)


# ---------------------------------------------------------------------------------------------
# The judge itself


def test_reply_records_model_prompt_hash_settings_and_text(replay: ReplayServer) -> None:
    judge = make_judge(replay.url)
    assert isinstance(judge, Judge) and judge.name == "openai:gpt-4-0613" and judge.concurrency == 4
    messages = [{"role": "system", "content": "You grade."}, {"role": "user", "content": "Which colour? é"}]
    reply = judge.complete(messages, temperature=0.2, max_tokens=7, run=2)
    canonical = json.dumps(messages, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert reply.error is None and reply.text == "1"
    assert reply.model == "gpt-4-0613-replay"  # what the server reported, not what was asked
    assert reply.prompt_hash == hashlib.sha256(canonical).hexdigest() == messages_hash(messages)
    assert reply.settings == {"temperature": 0.2, "max_tokens": 7, "run": 2}
    assert reply.cached is False and reply.record()["text"] == "1"
    sent = replay.requests[0]["body"]
    assert sent["model"] == "gpt-4-0613" and sent["messages"] == messages
    assert sent["temperature"] == 0.2 and sent["max_tokens"] == 7
    judge.close()


def test_run_index_is_part_of_the_cache_key(replay: ReplayServer, tmp_path: Path) -> None:
    cache = JudgeCache(tmp_path / "cache.sqlite")
    judge = make_judge(replay.url, cache)
    first = [ask(judge, "size?", run) for run in (0, 1)]
    assert len(replay.requests) == 2  # run 1 of the same prompt is a call of its own
    again = [ask(judge, "size?", run) for run in (0, 1)]
    assert len(replay.requests) == 2 and all(r.cached for r in again)
    assert [r.text for r in again] == [r.text for r in first] and again[1].settings["run"] == 1
    ask(judge, "size?", 0, temperature=0.7)  # other sampling settings: another call
    assert len(replay.requests) == 3
    assert judge.usage().model_dump() == {"calls": 3, "cached": 2, "errors": 0}
    judge.close()
    cache.close()
    # Re-scoring later (a new process, the same cache file) replays the grades without a call.
    cache = JudgeCache(tmp_path / "cache.sqlite")
    rescoring = make_judge(replay.url, cache)
    assert ask(rescoring, "size?", 1).cached and len(replay.requests) == 3
    other = make_judge(replay.url.replace("127.0.0.1", "localhost"), cache)  # another endpoint identity
    assert not ask(other, "size?", 1).cached and len(replay.requests) == 4
    cache.close()


def test_a_re_ask_is_a_call_of_its_own_with_the_cache_on(tmp_path: Path) -> None:
    """MM-Vet's lmms-eval grader asks again after an empty and an out-of-range reply: each re-ask reaches the
    server (attempt in the cache key), and re-scoring replays the whole chain from the cache."""
    from tasks.mmvet.scorer import grade_lmms_eval

    replies = iter(["", "3", "0.5"])
    with replay_server(replies=lambda _prompt: next(replies)) as server:
        cache = JudgeCache(tmp_path / "cache.sqlite")
        grade = grade_lmms_eval(make_judge(server.url, cache), "Q | GT | answer |", run=0)
        assert grade.score == 0.5 and len(server.requests) == 3
        assert [c["settings"].get("attempt", 0) for c in grade.calls] == [0, 1, 2]
        again = grade_lmms_eval(make_judge(server.url, cache), "Q | GT | answer |", run=0)
        assert again.score == 0.5 and len(server.requests) == 3 and all(c["cached"] for c in again.calls)
        cache.close()


def test_a_cache_from_before_attempts_is_upgraded_in_place(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "cache.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE judge_replies (model TEXT NOT NULL, endpoint TEXT NOT NULL, prompt_hash TEXT NOT NULL,"
            " temperature REAL NOT NULL, max_tokens INTEGER NOT NULL, run INTEGER NOT NULL, reply TEXT NOT NULL,"
            " created REAL NOT NULL, PRIMARY KEY (model, endpoint, prompt_hash, temperature, max_tokens, run))"
        )
        conn.execute("INSERT INTO judge_replies VALUES ('m', 'e', 'h', 0.0, 3, 1, ?, 0)", (json.dumps({"text": "1"}),))
    conn.close()
    cache = JudgeCache(path)
    hit = cache.get(JudgeKey("m", "e", "h", 0.0, 3, 1))
    assert hit is not None and hit.text == "1" and hit.cached
    assert cache.get(JudgeKey("m", "e", "h", 0.0, 3, 1, attempt=1)) is None
    cache.put(JudgeKey("m", "e", "h", 0.0, 3, 1, attempt=1), JudgeReply(text="0"))
    assert cache.get(JudgeKey("m", "e", "h", 0.0, 3, 1, attempt=1)).text == "0"  # type: ignore[union-attr]
    cache.close()


@pytest.mark.parametrize("failure", ["500", "close", "sleep"])
def test_transport_errors_are_retried_then_returned(failure: str, replay: ReplayServer, tmp_path: Path) -> None:
    replay.always = failure
    replay.sleep_s = 1.5
    cache = JudgeCache(tmp_path / "cache.sqlite")
    judge = make_judge(replay.url, cache, retries=2, timeout=0.5)
    reply = ask(judge, "colour?")
    assert len(replay.requests) == 3  # one try and two retries, then it gives up
    assert reply.error is not None and "gave up after 3 tries" in reply.error and reply.text == ""
    assert reply.prompt_hash and reply.settings["run"] == 0
    expected = {"500": "HTTP 500", "close": "Connection", "sleep": "Timeout"}[failure]
    assert expected in reply.error
    replay.always = None
    fresh = ask(judge, "colour?")  # a failure is never cached
    assert fresh.error is None and fresh.text == "1" and len(replay.requests) == 4
    assert judge.usage().errors == 1
    cache.close()


def test_a_transient_error_is_retried_to_success(replay: ReplayServer) -> None:
    replay.failures.extend(["500", "close"])
    reply = ask(make_judge(replay.url, retries=3), "colour?")
    assert reply.error is None and reply.text == "1" and len(replay.requests) == 3


def test_client_errors_are_not_retried(replay: ReplayServer) -> None:
    replay.always = "400"
    reply = ask(make_judge(replay.url, retries=3), "colour?")
    assert reply.error is not None and "HTTP 400" in reply.error and len(replay.requests) == 1


def test_concurrency_is_bounded() -> None:
    with replay_server(default="1", delay_s=0.15) as server:
        judge = make_judge(server.url, concurrency=3)
        replies = judge_map(judge, lambda i: ask(judge, f"item {i}"), range(12))
        assert [r.text for r in replies] == ["1"] * 12
        assert server.max_in_flight == 3
        # Calls made outside judge_map are bounded by the judge as well.
        judge.concurrency = 8
        judge_map(judge, lambda i: ask(judge, f"again {i}"), range(8))
        assert server.max_in_flight == 3


def test_api_key_sent_but_never_in_errors(replay: ReplayServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_JUDGE_KEY", SECRET)
    replay.always = "500"  # the server echoes the Authorization header in its error
    reply = ask(make_judge(replay.url, api_key_env="MY_JUDGE_KEY", retries=0), "colour?")
    assert replay.requests[0]["headers"]["authorization"] == f"Bearer {SECRET}"
    assert reply.error is not None and "[redacted]" in reply.error and SECRET not in reply.error


def test_missing_key_is_an_error_for_remote_endpoints_only(
    replay: ReplayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(UsageError, match=r"\$OPENAI_API_KEY is not set.*--judge-api-key-env"):
        make_judge("https://api.example.invalid/v1")
    assert ask(make_judge(replay.url), "colour?").text == "1"
    assert replay.requests[0]["headers"]["authorization"] == "Bearer no-key"  # a placeholder for a local server


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"spec": "gpt-4"}, "--judge must be openai:MODEL"),
        ({"spec": "openai:"}, "--judge must be openai:MODEL"),
        ({"spec": "openai:gpt-4", "base_url": "127.0.0.1:8000"}, "--judge-base-url must be an http"),
        ({"spec": None, "runs": 2}, "--judge-runs: only used with --judge openai:MODEL"),
        ({"spec": "demo", "base_url": "http://127.0.0.1:1/v1"}, "--judge-base-url: not used with --judge demo"),
    ],
)
def test_bad_judge_flags_name_themselves(options: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        build_judge(JudgeOptions(**options), None)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Through the CLI


def random_demo_model() -> str:
    """The untrained demo stand-in: its MMBench answers match no option, so passes go to the choice extractor
    (the trained demo model answers with clean letters, which the judge never sees)."""
    from model_adapters.demo_model import ensure_random_demo_checkpoint

    return f"tinyllava:{ensure_random_demo_checkpoint()}"


def harness(*args: str, env: dict[str, str] | None = None, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], capture_output=True, text=True, timeout=timeout, cwd=REPO,
        env={**os.environ, **(env or {})},
    )  # fmt: skip


def only_run_dir(out: Path) -> Path:
    runs = [p for p in out.iterdir() if (p / "results.json").is_file()]
    assert len(runs) == 1, runs
    return runs[0]


def assert_secret_absent(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


@pytest.mark.slow
def test_mmbench_sends_the_choice_extractor_prompt_for_unmatched_passes(tmp_path: Path) -> None:
    out = tmp_path / "results"
    template = load_prompt("choice_extractor_prompt.txt")
    opening = template[: template.index("{")]
    with replay_server(replies=[("Answer: six", "B")], default="I cannot tell") as server:
        args = ("run", "--tasks", "mmbench", "--limit", "4", "--output-dir", str(out), "--no-progress",
                "--model", random_demo_model(),
                "--judge", "openai:gpt-4-0613", "--judge-base-url", server.url)  # fmt: skip
        proc = harness(*args, env={"OPENAI_API_KEY": SECRET})
        assert proc.returncode == 0, proc.stderr
        prompts = server.prompts()
        assert prompts and all(p.startswith(opening) for p in prompts)
        assert {r["headers"]["authorization"] for r in server.requests} == {f"Bearer {SECRET}"}
        # An unreadable reply is asked again: three tries, each its own call (run index 0, 1, 2).
        unreadable = [p for p in prompts if "Answer: six" not in p]
        assert unreadable and all(unreadable.count(p) == 3 for p in unreadable)
        run_dir = only_run_dir(out)
        result = load_results(run_dir)
        judge = result.judge
        assert judge is not None and judge.model == "gpt-4-0613" and judge.base_url == server.url
        assert judge.models_reported == ["gpt-4-0613-replay"] and judge.concurrency == 4 and not judge.is_demo
        assert judge.api_key_env == "OPENAI_API_KEY"
        record = result.tasks["mmbench"]
        assert record.judge_usage is not None and record.judge_usage.calls == len(prompts)
        assert any("choice extractor (gpt-4-0613-replay)" in note for note in record.notes)
        log = [json.loads(line) for line in (run_dir / "samples" / "mmbench.jsonl").read_text().splitlines()]
        read_by = {rec["detail"]["read_by"] for rec in log}
        assert "judge" in read_by and "random" in read_by
        assert_secret_absent(out)
        # The same run again: answers and grades come from the cache, no call is made.
        n_calls = len(server.requests)
        again = harness(*args, env={"OPENAI_API_KEY": SECRET})
        assert again.returncode == 0, again.stderr
        assert len(server.requests) == n_calls
        second = next(load_results(p) for p in out.iterdir() if p.is_dir() and p != run_dir)
        usage = second.tasks["mmbench"].judge_usage
        assert usage is not None and usage.calls == 0 and usage.cached == record.judge_usage.calls
        assert second.tasks["mmbench"].metrics == record.metrics


@pytest.mark.slow
def test_judge_demo_serves_the_demo_model_in_process(tmp_path: Path) -> None:
    out = tmp_path / "results"
    proc = harness("run", "--tasks", "mmbench", "--limit", "2", "--output-dir", str(out), "--no-progress",
                   "--model", random_demo_model(), "--judge", "demo")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "DEMO JUDGE" in proc.stderr
    result = load_results(only_run_dir(out))
    assert result.judge is not None and result.judge.is_demo and result.judge.base_url.startswith("demo:")
    assert result.judge.models_reported == ["demo"] and result.judge.api_key_env is None
    usage = result.tasks["mmbench"].judge_usage
    assert usage is not None and usage.calls > 0 and usage.errors == 0


@pytest.fixture
def plugin_env(tmp_path: Path) -> dict[str, str]:
    """PYTHONPATH with the judged test task registered as a plugin."""
    site = register(tmp_path / "site")
    return {"PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}


@pytest.fixture
def plugin_root(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    JudgedEchoTask().write_demo(root, 0)
    return root


@pytest.mark.slow
def test_judged_task_without_judge_stops_before_generation(
    tmp_path: Path, plugin_env: dict[str, str], plugin_root: Path
) -> None:
    out = tmp_path / "results"
    proc = harness("run", "--tasks", "gqa,judged_echo", "--data-root", str(plugin_root), "--output-dir", str(out),
                   env=plugin_env)  # fmt: skip
    assert proc.returncode == 2
    message = proc.stderr.strip()
    assert message.count("\n") == 0, message
    assert "task judged_echo is scored by a judge: pass --judge openai:gpt-4-0613" in message
    assert "--no-judge" in message
    assert not out.exists()  # stopped before loading a model, generating or writing anything
    listing = harness("list", "--json", env=plugin_env)
    tasks = {t["name"]: t for t in json.loads(listing.stdout)["tasks"]}
    assert tasks["judged_echo"]["judged"] is True and tasks["judged_echo"]["default_judge"] == "gpt-4-0613"
    assert tasks["gqa"]["judged"] is False and tasks["gqa"]["default_judge"] is None
    table = harness("list", env={**plugin_env, "COLUMNS": "200"})
    assert "needed (paper: gpt-4-0613)" in table.stdout


@pytest.mark.slow
def test_no_judge_keeps_answers_for_a_later_score(
    tmp_path: Path, plugin_env: dict[str, str], plugin_root: Path
) -> None:
    out = tmp_path / "results"
    proc = harness("run", "--tasks", "judged_echo", "--data-root", str(plugin_root), "--output-dir", str(out),
                   "--no-judge", "--no-progress", env=plugin_env)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    run_dir = only_run_dir(out)
    result = load_results(run_dir)
    record = result.tasks["judged_echo"]
    assert result.spec.no_judge and result.judge is None
    assert record.metrics == {} and record.n_samples == 4 and "not scored (--no-judge)" in record.notes[0]
    log_path = run_dir / "samples" / "judged_echo.jsonl"
    log = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert len(log) == 4 and all(rec["response"]["error"] is None for rec in log)

    refused = harness("score", "judged_echo", "--answers", str(log_path), "--data-root", str(plugin_root),
                      env=plugin_env)  # fmt: skip
    assert refused.returncode == 2 and "pass --judge openai:gpt-4-0613" in refused.stderr
    assert "--no-judge" not in refused.stderr

    with replay_server(default="1") as server:
        score = ("score", "judged_echo", "--answers", str(log_path), "--data-root", str(plugin_root), "--json",
                 "--judge", "openai:gpt-4-0613", "--judge-base-url", server.url, "--judge-runs", "2")  # fmt: skip
        scored = harness(*score, env={**plugin_env, "OPENAI_API_KEY": SECRET})
        assert scored.returncode == 0, scored.stderr
        assert json.loads(scored.stdout)["scores"] == {"score": 100.0}
        prompts = server.prompts()
        assert len(prompts) == 8 and all(prompts.count(p) == 2 for p in prompts)  # 4 answers x 2 runs
        # Judge replies went to the run's cache: scoring again replays them.
        again = harness(*score, "--output-dir", str(out), env={**plugin_env, "OPENAI_API_KEY": SECRET})
        assert again.returncode == 0, again.stderr
        assert len(server.requests) == 8
    saved = next(load_results(p) for p in out.iterdir() if p.is_dir() and p != run_dir)
    assert saved.spec.command == "score" and saved.judge is not None and saved.judge.runs == 2
    assert saved.tasks["judged_echo"].protocol_settings["judge_runs"] == 2
    usage = saved.tasks["judged_echo"].judge_usage
    assert usage is not None and usage.model_dump() == {"calls": 0, "cached": 8, "errors": 0}
    graded_log = out / saved.run_id / "samples" / "judged_echo.jsonl"
    graded = [json.loads(line) for line in graded_log.read_text().splitlines()]
    judge_records = graded[0]["detail"]["judge"]
    assert [r["settings"]["run"] for r in judge_records] == [0, 1]
    assert all(r["model"] == "gpt-4-0613-replay" and r["cached"] for r in judge_records)
    assert_secret_absent(out)


@pytest.mark.slow
def test_failing_judge_fails_the_run_and_keeps_the_answers(
    tmp_path: Path, plugin_env: dict[str, str], plugin_root: Path
) -> None:
    """Every judge call fails: the run ends (exit 1, status failed, the reason in one line), after every
    answer is judged and recorded, so a later ``score`` with a working judge needs no generation."""
    out = tmp_path / "results"
    with replay_server(default="1") as server:
        server.always = "500"
        proc = harness("run", "--tasks", "judged_echo", "--data-root", str(plugin_root), "--output-dir", str(out),
                       "--no-progress", "--judge", "openai:gpt-4-0613", "--judge-base-url", server.url,
                       "--judge-retries", "1", env=plugin_env)  # fmt: skip
        assert proc.returncode == 1, proc.stderr
        assert len(server.requests) == 8  # 4 answers, each tried twice
    last = proc.stderr.strip().splitlines()[-1]
    assert last == "error: judged_echo: score could not be computed (4 of 4 judge calls failed)"
    assert "Traceback" not in proc.stderr and "not computed" in proc.stdout + proc.stderr
    result = load_results(only_run_dir(out))
    assert result.status == "failed" and result.errors == [last.removeprefix("error: ")]
    assert len((only_run_dir(out) / "samples" / "judged_echo.jsonl").read_text().splitlines()) == 4
    record = result.tasks["judged_echo"]
    assert record.judge_usage is not None and record.judge_usage.errors == 4 and record.n_parse_failures == 4


@pytest.mark.slow
@pytest.mark.parametrize(
    ("task", "reply", "headline", "expected"),
    [("mmvet", "0.8", "total", 80.0), ("llava_bench", "8 6\nBoth are fine.", "relative", 75.0)],
)
def test_score_judged_benchmark_with_an_openai_judge(
    task: str, reply: str, headline: str, expected: float, tmp_path: Path
) -> None:
    out = tmp_path / "results"
    proc = harness("run", "--tasks", task, "--no-judge", "--output-dir", str(out), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    run_dir = only_run_dir(out)
    generated = load_results(run_dir)
    n_answers = generated.tasks[task].n_samples
    assert generated.tasks[task].metrics == {} and n_answers > 0
    log_path = run_dir / "samples" / f"{task}.jsonl"
    with replay_server(default=reply, model_id="gpt-4-replay") as server:
        scored = harness("score", task, "--answers", str(log_path), "--data-root", generated.data.root, "--json",
                         "--judge", "openai:gpt-4-0613", "--judge-base-url", server.url, "--judge-runs", "2",
                         env={"OPENAI_API_KEY": SECRET})  # fmt: skip
        assert scored.returncode == 0, scored.stderr
        payload = json.loads(scored.stdout)
        assert payload["scores"][headline] == pytest.approx(expected)
        prompts = server.prompts()
        # Two runs of each prompt (items that give the very same prompt share its cached grade).
        assert len(set(prompts)) > n_answers // 2 and all(prompts.count(p) == 2 for p in prompts)
        assert all(r["body"]["model"] == "gpt-4-0613" for r in server.requests)
    assert_secret_absent(out)
