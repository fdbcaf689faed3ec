"""Flag types and flag groups that several subcommands share."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.judging.setup import JudgeOptions


DEFAULT_OUTPUT = "results"


def int_at_least(minimum: int, name: str) -> Callable[[str], int]:
    """An argparse type: an integer no smaller than ``minimum`` (``name`` shows in argparse's messages)."""

    def parse(value: str) -> int:
        number = int(value)
        if number < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return number

    parse.__name__ = name
    return parse


positive = int_at_least(1, "positive")
non_negative = int_at_least(0, "non_negative")


def probability(value: str) -> float:
    number = float(value)
    if not 0 < number < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return number


def seconds(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {value}")
    return number


def add_judge_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("judge (tasks graded by an LLM, and MMBench's choice extractor)")
    group.add_argument("--judge", default=None, metavar="openai:MODEL|demo",
                       help="grade with MODEL at an OpenAI-compatible endpoint, or the demo model served in-process")
    group.add_argument("--judge-base-url", default=None, metavar="URL",
                       help="the endpoint's base URL, e.g. http://127.0.0.1:8000/v1 (default: OpenAI's API)")
    group.add_argument("--judge-api-key-env", default=None, metavar="NAME",
                       help="environment variable holding the API key (default: OPENAI_API_KEY; never recorded)")
    group.add_argument("--judge-runs", type=positive, default=None, metavar="N",
                       help="grading runs per answer (overrides the protocol's judge_runs)")
    group.add_argument("--judge-concurrency", type=positive, default=4, metavar="N", help="judge calls in flight")
    group.add_argument("--judge-timeout", type=seconds, default=60.0, metavar="S", help="seconds per judge call")
    group.add_argument("--judge-retries", type=non_negative, default=3, metavar="N",
                       help="retries of a call after a transport error (with exponential backoff)")  # fmt: skip


def judge_options(args: argparse.Namespace) -> JudgeOptions:
    from harness.judging.setup import JudgeOptions

    return JudgeOptions(
        spec=args.judge,
        base_url=args.judge_base_url,
        api_key_env=args.judge_api_key_env,
        runs=args.judge_runs,
        concurrency=args.judge_concurrency,
        timeout=args.judge_timeout,
        retries=args.judge_retries,
    )


def shard(value: str) -> tuple[int, int]:
    """``I/N``: the I-th of N shards (0 <= I < N)."""
    index, sep, count = value.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be I/N such as 0/4, got {value}") from None
    if not sep or n < 1 or not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"must be I/N with 0 <= I < N, got {value}")
    return i, n
