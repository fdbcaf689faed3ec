"""Judges behind ``--judge``: any OpenAI-compatible chat endpoint, or the demo model served in-process.

``--judge openai:MODEL [--judge-base-url URL]`` grades with MODEL at URL (default: OpenAI's API); the
key comes from ``$OPENAI_API_KEY`` (or ``--judge-api-key-env NAME``) and is never recorded.
``--judge demo`` serves the demo model on 127.0.0.1 with ``harness serve``'s server, so a demo run of
a judged task works offline; its grades are labelled demo.

Each call is cached (``harness.judging.cache``) and leaves a ``JudgeReply`` with the model the server
reported, the prompt hash, the sampling settings and the reply text.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.data.demo import DEMO_MODEL_SPEC
from harness.errors import UsageError
from harness.judging.cache import JudgeCache, JudgeKey
from harness.judging.contract import JudgeReply
from harness.openai_chat import (
    DEFAULT_BASE_URL,
    DEFAULT_KEY_ENV,
    PLACEHOLDER_KEY,
    ChatClient,
    normalise_base_url,
    resolve_api_key,
)
from harness.results.schema import JudgeInfo, JudgeUsage
from harness.run.response_cache import CACHE_FILE
from harness.task import Task

DEMO_JUDGE = "demo"
DEFAULT_CONCURRENCY = 4
DEFAULT_TIMEOUT = 60.0
DEFAULT_RETRIES = 3


def messages_hash(messages: Sequence[dict[str, str]]) -> str:
    """sha256 of the canonical JSON of the messages (sorted keys, no spaces, UTF-8)."""
    blob = json.dumps(list(messages), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass
class JudgeOptions:
    """The ``--judge*`` flags of ``run`` and ``score``."""

    spec: str | None = None  # "openai:MODEL" or "demo"; None: no judge
    base_url: str | None = None
    api_key_env: str | None = None
    runs: int | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    backoff: float = 1.0  # seconds before the first retry, doubled for each next one

    def check(self) -> None:
        """Flags that only make sense with ``--judge`` name themselves when given without it."""
        if self.spec is None:
            given = [flag for flag, value in (("--judge-base-url", self.base_url), ("--judge-api-key-env",
                     self.api_key_env), ("--judge-runs", self.runs)) if value is not None]  # fmt: skip
            if given:
                raise UsageError(f"{', '.join(given)}: only used with --judge openai:MODEL")
        if self.timeout <= 0:
            raise UsageError(f"--judge-timeout must be positive; got {self.timeout}")
        if self.retries < 0:
            raise UsageError(f"--judge-retries must be 0 or more; got {self.retries}")

    def settings(self, protocol_settings: dict[str, object]) -> dict[str, object]:
        """The settings a task's ``score`` receives: the protocol's, with ``judge_runs`` overridden."""
        merged = dict(protocol_settings)
        if self.runs is not None:
            merged["judge_runs"] = self.runs
        return merged


def judge_requirement(task: Task, no_judge_allowed: bool) -> str:
    """The one-line message for a judged task started without a judge."""
    model = task.default_judge or "MODEL"
    later = " or --no-judge to generate the answers now and score them later with `harness score`"
    return (
        f"task {task.name} is scored by a judge: pass --judge openai:{model} (the papers' judge; "
        f"--judge-base-url URL for another OpenAI-compatible server){later if no_judge_allowed else ''}"
    )


def require_judges(tasks: Sequence[Task], options: JudgeOptions, no_judge: bool = False) -> None:
    """UsageError, before any work, for a judged task with no judge (unless ``--no-judge``)."""
    options.check()
    if no_judge and options.spec is not None:
        raise UsageError("--judge and --no-judge exclude each other")
    if options.spec is None and not no_judge:
        for task in tasks:
            if task.judged:
                raise UsageError(judge_requirement(task, no_judge_allowed=True))


@dataclass
class _Usage:
    calls: int = 0
    cached: int = 0
    errors: int = 0
    models: set[str] = field(default_factory=set)


class OpenAIJudge:
    """A judge over an OpenAI-compatible endpoint: bounded concurrency, retries, cache, records."""

    def __init__(
        self,
        spec: str,
        model: str,
        client: ChatClient,
        endpoint: str,
        concurrency: int = DEFAULT_CONCURRENCY,
        cache: JudgeCache | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        api_key_env: str | None = None,
        is_demo: bool = False,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.spec = spec
        self.name = DEMO_JUDGE if is_demo else f"openai:{model}"
        self.model = model
        self.concurrency = max(1, concurrency)
        self.client = client
        self.endpoint = endpoint
        self.cache = cache
        self.timeout = timeout
        self.api_key_env = api_key_env
        self.is_demo = is_demo
        self._on_close = on_close
        self._slots = threading.BoundedSemaphore(self.concurrency)
        self._lock = threading.Lock()
        self._usage = _Usage()

    def complete(
        self, messages: list[dict[str, str]], temperature: float, max_tokens: int, run: int = 0, attempt: int = 0
    ) -> JudgeReply:
        """One chat completion, from the cache when this exact call (run and attempt included) was made before."""
        prompt_hash = messages_hash(messages)
        settings = {"temperature": float(temperature), "max_tokens": int(max_tokens), "run": int(run)}
        if attempt:
            settings["attempt"] = int(attempt)
        key = JudgeKey(
            self.model, self.endpoint, prompt_hash, float(temperature), int(max_tokens), int(run), int(attempt)
        )
        hit = self.cache.get(key) if self.cache else None
        if hit is not None:
            self._count(hit)
            return hit
        payload = {"model": self.model, "messages": messages, "temperature": temperature, "max_tokens": max_tokens}
        start = time.perf_counter()
        with self._slots:
            outcome = self.client.complete(payload)
        reply = JudgeReply(
            text=outcome.text if outcome.error is None else "",
            error=outcome.error,
            model=outcome.model,
            prompt_hash=prompt_hash,
            settings=settings,
            seconds=time.perf_counter() - start,
        )
        if self.cache:
            self.cache.put(key, reply)
        self._count(reply)
        return reply

    def _count(self, reply: JudgeReply) -> None:
        with self._lock:
            usage = self._usage
            usage.cached += reply.cached
            usage.calls += not reply.cached
            usage.errors += reply.error is not None
            if reply.model:
                usage.models.add(reply.model)

    def usage(self) -> JudgeUsage:
        """Calls so far (a snapshot; subtract two snapshots for one task's share)."""
        with self._lock:
            return JudgeUsage(calls=self._usage.calls, cached=self._usage.cached, errors=self._usage.errors)

    def info(self, runs: int | None) -> JudgeInfo:
        """What results.json records about this judge (never the key)."""
        with self._lock:
            reported = sorted(self._usage.models)
        return JudgeInfo(
            spec=self.spec,
            name=self.name,
            model=self.model,
            base_url=self.endpoint if self.is_demo else self.client.base_url,
            models_reported=reported,
            runs=runs,
            concurrency=self.concurrency,
            timeout=self.timeout,
            retries=self.client.retries,
            api_key_env=self.api_key_env,
            is_demo=self.is_demo,
        )

    def close(self) -> None:
        self.client.close()
        if self._on_close is not None:
            self._on_close()


def usage_since(judge: OpenAIJudge | None, before: JudgeUsage | None) -> JudgeUsage | None:
    """The calls made since the snapshot ``before`` (None without a judge)."""
    if judge is None or before is None:
        return None
    now = judge.usage()
    return JudgeUsage(calls=now.calls - before.calls, cached=now.cached - before.cached,
                      errors=now.errors - before.errors)  # fmt: skip


def parse_judge_spec(spec: str) -> str | None:
    """The model of ``openai:MODEL``; None for ``demo``; UsageError for anything else."""
    if spec == DEMO_JUDGE:
        return None
    kind, sep, model = spec.partition(":")
    if kind != "openai" or not sep or not model.strip():
        raise UsageError(f"--judge must be openai:MODEL (an OpenAI-compatible endpoint) or demo; got '{spec}'")
    return model.strip()


def build_judge(options: JudgeOptions, cache: JudgeCache | None) -> OpenAIJudge | None:
    """The judge the flags describe, or None without ``--judge``."""
    options.check()
    if options.spec is None:
        return None
    model = parse_judge_spec(options.spec)
    if model is None:
        return _demo_judge(options, cache)
    base_url = normalise_base_url(options.base_url or DEFAULT_BASE_URL, "--judge-base-url")
    env_name = options.api_key_env or DEFAULT_KEY_ENV
    key = resolve_api_key(env_name, base_url, "--judge-api-key-env")
    client = ChatClient(base_url, key, options.timeout, options.retries, options.backoff)
    return OpenAIJudge(options.spec, model, client, base_url, options.concurrency, cache, options.timeout, env_name)


def _demo_judge(options: JudgeOptions, cache: JudgeCache | None) -> OpenAIJudge:
    """The demo model served on 127.0.0.1 (a random free port) for the length of the run."""
    given = [f for f, v in (("--judge-base-url", options.base_url), ("--judge-api-key-env", options.api_key_env)) if v]
    if given:
        raise UsageError(f"{', '.join(given)}: not used with --judge demo (the demo judge is served in-process)")
    from harness.registry import get_adapter_class, parse_model_spec
    from harness.serve.server import start_server

    adapter_name, target = parse_model_spec(DEMO_MODEL_SPEC)
    adapter = get_adapter_class(adapter_name).from_spec(target, {}, None, 0)
    server = start_server(adapter, "127.0.0.1", 0, batch_size=options.concurrency, served_name=DEMO_JUDGE)
    client = ChatClient(server.url, PLACEHOLDER_KEY, options.timeout, options.retries, options.backoff)
    # The port changes every run; the cache identity is the demo model's fingerprint instead.
    endpoint = f"demo:{adapter.fingerprint}"
    return OpenAIJudge(
        DEMO_JUDGE, DEMO_JUDGE, client, endpoint, options.concurrency, cache, options.timeout, None, True, server.close
    )


def judge_cache_for(results_root: Path | None) -> JudgeCache | None:
    """The judge table of ``<results_root>/cache.sqlite`` (None: replies are not cached)."""
    return JudgeCache(results_root / CACHE_FILE) if results_root is not None else None
