"""The engine's own parts: parsing, io errors, cache, store, stats, protocols, batching plan."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import ClassVar

import pytest

from harness.data.readers import iter_jsonl, read_json, read_tsv
from harness.errors import DataError, UsageError
from harness.protocol import load_protocol
from harness.registry import get_task, get_tasks, parse_model_args, parse_model_spec
from harness.run.response_cache import ResponseCache
from harness.run.runner import plan_batches
from harness.stats.analytic import mean_metric, mean_stderr, sum_of_means_stderr
from harness.types import (
    GenerationSettings,
    ImageRef,
    Request,
    Response,
    Sample,
    SampleScore,
    TaskResult,
    trusted_sample_score,
)


def test_model_spec_and_args_parsing() -> None:
    assert parse_model_spec("tinyllava:/a/b:c") == ("tinyllava", "/a/b:c")
    assert parse_model_args("conv=phi, dtype=float32") == {"conv": "phi", "dtype": "float32"}
    with pytest.raises(UsageError, match="ADAPTER:TARGET"):
        parse_model_spec("tinyllava")
    with pytest.raises(UsageError, match="'conv' is not KEY=VALUE"):
        parse_model_args("conv")


def test_unknown_tasks_are_all_named_with_the_valid_ones() -> None:
    with pytest.raises(UsageError) as err:
        get_tasks("gqa,nope,zzz")
    message = str(err.value)
    assert "nope, zzz" in message
    valid = message.split("valid tasks: ")[1].split(", ")
    assert {"gqa", "mme"} <= set(valid) and valid == sorted(valid)
    assert err.value.exit_code == 2


def test_io_errors_name_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "q.jsonl"
    bad.write_text('{"a": 1}\n\n{"a": 2,}\n')
    with pytest.raises(DataError, match=r"q\.jsonl:3: malformed JSON line"):
        list(iter_jsonl(bad))
    bad_json = tmp_path / "q.json"
    bad_json.write_text('{\n  "x": [1,\n}\n')
    with pytest.raises(DataError, match=r"q\.json:3:1: malformed JSON"):
        read_json(bad_json)
    tsv = tmp_path / "t.txt"
    tsv.write_text("a\tb\tc\nd\te\n")
    with pytest.raises(DataError, match=r"t\.txt:2: expected 3 tab-separated columns, found 2"):
        read_tsv(tsv, expected_columns=3)


# Lines json.loads reads or rejects in every way the direct scanner could get differently (spaces around a
# value, a BOM, a non-JSON space, trailing data, an error after leading spaces, constants, deep nesting).
_JSONL_LINES = [
    '{"a": 1}', '  {"a": [1, 2]}  ', '\t{"a": "x"}\r', '{"a": 1} x', '{"a": 1}{"b": 2}', '\ufeff{"a": 1}',
    '\u00a0{"a": 1}', '{"a": 1}\x0b', '{"a": NaN, "b": -Infinity}', '  {"a": "x\ty"}', '  {"a": "\\q"}',
    '{"a": 1,}', '{', '"text"', "[1]", "1 2", '{"a": 1e999}', '{"a": "\\ud800"}', "[" * 100_000,
]


@pytest.mark.parametrize("line", _JSONL_LINES)
def test_a_jsonl_line_reads_as_json_loads_reads_it(tmp_path: Path, line: str) -> None:
    import json
    import re

    path = tmp_path / "a.jsonl"
    path.write_text(f"\n{line}\n", encoding="utf-8")
    try:
        expected = json.loads(line + "\n")  # the line as the file iterator gives it
    except json.JSONDecodeError as exc:
        message = f"a.jsonl:2: malformed JSON line: {exc.msg} (column {exc.colno})"
        with pytest.raises(DataError, match=re.escape(message) + "$") as err:
            list(iter_jsonl(path))
        assert f"(char {exc.pos})" in str(err.value.__cause__)  # the position json.loads gives
        return
    except RecursionError:
        with pytest.raises(DataError, match=r"a\.jsonl:2: JSON nested too deeply"):
            list(iter_jsonl(path))
        return
    if not isinstance(expected, dict):
        with pytest.raises(DataError, match=r"a\.jsonl:2: expected a JSON object"):
            list(iter_jsonl(path))
        return
    [(lineno, got)] = list(iter_jsonl(path))
    assert lineno == 2 and repr(got) == repr(expected)


def test_a_jsonl_line_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"a": 1}\n' * 3000 + b'{"a": "\xff"}\n')
    with pytest.raises(DataError, match=r"a\.jsonl:3001: not UTF-8 text$"):  # not the line of the decoded block
        list(iter_jsonl(path))


def test_request_key_changes_with_content_and_image_file(tmp_path: Path) -> None:
    image = tmp_path / "a.png"
    image.write_bytes(b"one")
    base = Request("gqa", "1", "<image>\nQ", (ImageRef(str(image)),), GenerationSettings(128))
    same = Request("other-task", "2", "<image>\nQ", (ImageRef(str(image)),), GenerationSettings(128))
    assert base.key() == same.key()
    assert base.key() != Request("gqa", "1", "<image>\nQ2", (ImageRef(str(image)),), GenerationSettings(128)).key()
    assert base.key() != Request("gqa", "1", "<image>\nQ", (ImageRef(str(image)),), GenerationSettings(16)).key()
    before = base.key()
    image.write_bytes(b"three")
    assert base.key() != before


def test_cache_roundtrip_skips_errors(tmp_path: Path) -> None:
    cache = ResponseCache(tmp_path / "c.sqlite")
    cache.put_many("fp", [("k1", Response(text="yes", output_tokens=2)), ("k2", Response(error="boom"))])
    found = cache.get_many("fp", ["k1", "k2", "k3"])
    assert set(found) == {"k1"}
    assert found["k1"].text == "yes" and found["k1"].cached and found["k1"].output_tokens == 2
    assert cache.get_many("other-fp", ["k1"]) == {}
    cache.close()
    reopened = ResponseCache(tmp_path / "c.sqlite")
    assert reopened.get_many("fp", ["k1"])["k1"].text == "yes"


def test_plan_batches_groups_settings_and_sorts_by_length() -> None:
    lengths = [5, 1, 9, 3, 7, 2]
    reqs = [Request("t", str(i), "x" * n, (), GenerationSettings(8 if i % 2 else 16)) for i, n in enumerate(lengths)]
    batches = plan_batches(reqs, 2, lambda r: len(r.prompt))
    assert sorted(i for b in batches for i in b) == list(range(6))
    for batch in batches:
        assert len({reqs[i].generation for i in batch}) == 1
        lengths = [len(reqs[i].prompt) for i in batch]
        assert lengths == sorted(lengths, reverse=True)
    assert batches[0] == [2, 4]  # the longest prompts of the first settings group come first


def test_stats_against_hand_computed_values() -> None:
    values = [1.0, 0.0, 1.0, 1.0]
    # squared deviations from 0.75 sum to 0.75; sample variance 0.75 / 3 = 0.25; se = 0.5 / sqrt(4)
    assert mean_stderr(values) == pytest.approx(0.25)
    metric = mean_metric(values)
    assert metric.value == pytest.approx(75.0)
    assert metric.ci_low == pytest.approx(75.0 - 1.959964 * 25.0, abs=1e-4)
    # clusters {a: [1, 0], b: [1, 1]}: residual sums -0.5 and 0.5; CR1 = sqrt(2/1 * 0.5) / 4
    assert mean_stderr(values, ["a", "a", "b", "b"]) == pytest.approx(math.sqrt(2 * 0.5) / 4)
    assert sum_of_means_stderr([3.0, 4.0]) == pytest.approx(5.0)
    assert sum_of_means_stderr([3.0, None]) is None


def test_cluster_stderr_is_wider_than_naive_for_correlated_pairs() -> None:
    rng = random.Random(0)
    values, clusters = [], []
    for g in range(200):
        v = float(rng.random() < 0.5)
        values += [v, v]  # perfectly correlated pairs
        clusters += [g, g]
    naive, clustered = mean_stderr(values), mean_stderr(values, clusters)
    assert clustered / naive == pytest.approx(math.sqrt(2), rel=0.05)


def test_protocol_files_are_data() -> None:
    protocol = load_protocol("llava15")
    assert protocol.name == "llava15" and protocol.version
    from tasks.gqa import GQATask

    assert protocol.settings_for(GQATask())["max_new_tokens"] == 128
    with pytest.raises(UsageError, match=r"valid protocols: .*llava15"):
        load_protocol("nope")


def test_task_version_is_the_last_changelog_entry_and_needs_one() -> None:
    from tasks.gqa import GQATask

    class Bumped(GQATask):
        changelog: ClassVar[dict[str, str]] = {**GQATask.changelog, "2": "a new prompt"}

    assert (GQATask.version, Bumped.version) == ("1", "2")
    with pytest.raises(TypeError, match="version '3' has no changelog line"):

        class Unlogged(GQATask):
            version = "3"


def test_a_trusted_sample_score_is_the_validated_one() -> None:
    detail = {"answers": ["a", "b"]}
    fast = trusted_sample_score("q1", "a", 0.6, False, detail)
    slow = SampleScore(sample_id="q1", parsed="a", score=0.6, correct=False, detail=detail)
    assert fast == slow and fast.model_dump() == slow.model_dump() and fast.model_dump_json() == slow.model_dump_json()
    assert fast.model_fields_set == slow.model_fields_set and fast.parse_failed is False
    assert fast.model_copy(update={"score": 1.0}).score == 1.0 and fast.score == 0.6
    result = TaskResult(task="t", version="1", metrics={}, headline=[], samples=[fast])
    assert TaskResult.model_validate_json(result.model_dump_json()).samples == [slow]


def test_the_default_answers_join_keeps_the_later_line_at_the_first_place() -> None:
    task = get_task("gqa")
    samples = [Sample(id=str(i), question="q") for i in range(20)]
    rng = random.Random(5)
    lines = [{"question_id": rng.choice([*range(25), "7", None])} for _ in range(200)] + [{"text": "no id"}]
    expected: dict[str, int] = {}
    for i, line in enumerate(lines):  # the join as a loop: known ids only; a later line replaces, in place
        if str(line.get("question_id")) in {s.id for s in samples}:
            expected[str(line.get("question_id"))] = i
    got = task.answer_lines(samples, lines)
    assert list(got.items()) == list(expected.items()) and len(got) == 20
