"""Protocol files are data: the shipped ones cover every task, a user's file loads by path and reaches the
requests and the scorer, its content hash identifies it, and a bad file is a one-line error naming it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from harness.errors import DataError, UsageError
from harness.protocol import PROTOCOL_DIR, available_protocols, load_protocol
from harness.registry import get_task, task_names
from harness.results.identity import RunIdentity
from harness.results.loading import load_run
from harness.results.schema import load_results
from harness.results.store import ResultsStore, RunRow, default_store_url
from harness.types import Sample
from tasks.common.requests import LLAVA_SUFFIX

LLAVA15 = PROTOCOL_DIR / "llava15.toml"
LMMS_EVAL = PROTOCOL_DIR / "lmms-eval.toml"
REQUIRED = ("prompt", "max_new_tokens", "scorer")


def harness(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, timeout=300)


def gqa_sample() -> Sample:
    return Sample(id="7", question="Is it red?" + LLAVA_SUFFIX, metadata={"raw_question": "Is it red?"})


def edited_copy(source: Path, target: Path, table: str, old: str, new: str) -> Path:
    """``source`` with the first ``old`` after the ``[tasks.<table>]`` header replaced by ``new``."""
    head, marker, tail = source.read_text(encoding="utf-8").partition(f"[tasks.{table}]\n")
    assert marker and old in tail.split("\n[", 1)[0], f"{old!r} is not in [tasks.{table}] of {source}"
    target.write_text(head + marker + tail.replace(old, new, 1), encoding="utf-8")
    return target


# ----------------------------------------------------------------------------------------------
# the shipped files


@pytest.mark.parametrize("name", ["llava15", "lmms-eval"])
def test_shipped_protocol_has_a_complete_table_for_every_task(name: str) -> None:
    protocol = load_protocol(name)
    assert protocol.name == name and protocol.source == name and name in available_protocols()
    assert set(task_names()) <= set(protocol.tasks)
    for task_name in task_names():
        task = get_task(task_name)
        table = protocol.tasks[task_name]
        assert set(REQUIRED) <= set(table), f"{name}: [tasks.{task_name}] lacks {set(REQUIRED) - set(table)}"
        assert table["prompt"] in task.prompts, f"{name}: {task_name} has no prompt builder {table['prompt']!r}"
        assert table["scorer"] in task.scorers, f"{name}: {task_name} has no scorer {table['scorer']!r}"
        assert protocol.supports(task) and task.default_settings == {}
        if table["prompt"] == "lmms-eval" and task_name not in ("scienceqa", "mmbench"):
            assert {"pre_prompt", "post_prompt"} <= set(table)
        if task.judged:
            assert {"judge_model", "judge_runs", "judge_max_tokens"} <= set(table)


def test_shipped_strings_are_exactly_the_python_strings() -> None:
    lmms = load_protocol("lmms-eval")
    for task_name in ("gqa", "mme", "textvqa", "vqav2", "vqav2_val"):
        assert lmms.tasks[task_name]["post_prompt"] == "\nAnswer the question using a single word or phrase."
    assert lmms.tasks["mmvet"]["pre_prompt"] == (
        "First please perform reasoning, and think step by step to provide best answer to the following question: \n\n"
    )
    assert lmms.tasks["textvqa"]["stop"] == ["ASSISTANT:"] and lmms.tasks["mmvet"]["temperature"] == 0.2


def test_no_settings_means_the_llava15_table() -> None:
    task = get_task("gqa")
    request = task.build_request(gqa_sample(), {})
    assert request.prompt == "<image>\nIs it red?" + LLAVA_SUFFIX and request.generation.max_new_tokens == 128
    assert task.resolve(None) == load_protocol("llava15").tasks["gqa"]


# ----------------------------------------------------------------------------------------------
# a user's file


def test_user_protocol_loads_by_path_and_reaches_the_request(tmp_path: Path) -> None:
    path = edited_copy(LLAVA15, tmp_path / "mine.toml", "gqa", "max_new_tokens = 128", "max_new_tokens = 48")
    protocol = load_protocol(str(path))
    assert protocol.source == str(path) and protocol.name == "llava15"
    task = get_task("gqa")
    request = task.build_request(gqa_sample(), protocol.settings_for(task))
    assert request.generation.max_new_tokens == 48
    assert request.prompt == "<image>\nIs it red?" + LLAVA_SUFFIX
    assert protocol.content_hash != load_protocol("llava15").content_hash


def test_user_post_prompt_reaches_the_request(tmp_path: Path) -> None:
    path = edited_copy(
        LMMS_EVAL,
        tmp_path / "short.toml",
        "gqa",
        f"post_prompt = {json.dumps(LLAVA_SUFFIX)}",
        'post_prompt = " Answer briefly."',
    )
    task = get_task("gqa")
    request = task.build_request(gqa_sample(), load_protocol(path).settings_for(task))
    assert request.prompt == "<image>\nIs it red? Answer briefly." and request.generation.max_new_tokens == 16


def test_content_hash_follows_the_settings_not_the_text(tmp_path: Path) -> None:
    same = tmp_path / "same.toml"
    same.write_text("# a copy with another comment\n" + LLAVA15.read_text(encoding="utf-8"), encoding="utf-8")
    shipped, copy = load_protocol("llava15"), load_protocol(same)
    assert copy.content_hash == shipped.content_hash and len(shipped.content_hash) == 16
    assert copy.source == str(same) and shipped.source == "llava15"
    changed = edited_copy(LLAVA15, tmp_path / "temp.toml", "mmvet", "judge_runs = 1", "judge_runs = 3")
    assert load_protocol(changed).content_hash != shipped.content_hash
    assert load_protocol("lmms-eval").content_hash != shipped.content_hash


def test_a_partial_table_takes_llava15_values_for_the_keys_it_leaves_out(tmp_path: Path) -> None:
    path = tmp_path / "partial.toml"
    path.write_text('name = "partial"\nversion = "0"\n\n[tasks.gqa]\nmax_new_tokens = 64\n', encoding="utf-8")
    protocol = load_protocol(path)
    gqa, mme = get_task("gqa"), get_task("mme")
    assert protocol.supports(gqa) and not protocol.supports(mme)
    assert protocol.settings_for(gqa) == {"prompt": "llava", "max_new_tokens": 64, "scorer": "official"}


def test_defaults_reach_every_task_and_a_task_table_overrides_them(tmp_path: Path) -> None:
    path = tmp_path / "tags.toml"
    path.write_text(
        'name = "tags"\nversion = "0"\n[defaults]\nreasoning_tags = [["<r>", "</r>"]]\nmax_new_tokens = 8\n'
        '[tasks.gqa]\nmax_new_tokens = 64\n[tasks.mme]\nreasoning_tags = []\n',
        encoding="utf-8",
    )
    protocol = load_protocol(path)
    gqa, mme = get_task("gqa"), get_task("mme")
    assert protocol.settings_for(gqa)["reasoning_tags"] == [["<r>", "</r>"]]
    assert protocol.settings_for(gqa)["max_new_tokens"] == 64 and protocol.settings_for(mme)["max_new_tokens"] == 8
    assert protocol.settings_for(mme)["reasoning_tags"] == []
    plain = tmp_path / "plain.toml"
    plain.write_text(path.read_text(encoding="utf-8").replace("[[\"<r>\", \"</r>\"]]", "[]"), encoding="utf-8")
    assert load_protocol(plain).content_hash != protocol.content_hash


# ----------------------------------------------------------------------------------------------
# errors


def test_unknown_prompt_or_scorer_name_is_a_usage_error_naming_the_key(tmp_path: Path) -> None:
    task = get_task("gqa")
    with pytest.raises(UsageError, match=r"task gqa: protocol setting prompt='fancy' is not one of: llava, lmms-eval"):
        task.build_request(gqa_sample(), {"prompt": "fancy"})
    path = edited_copy(LLAVA15, tmp_path / "vqa.toml", "gqa", 'scorer = "official"', 'scorer = "vqa"')
    with pytest.raises(UsageError, match=r"scorer='vqa' is not one of: official, lmms-eval") as caught:
        task.score([gqa_sample()], {}, load_protocol(path).settings_for(task))
    assert "\n" not in str(caught.value)


def test_a_builder_that_needs_a_missing_setting_names_it() -> None:
    with pytest.raises(UsageError, match="task gqa: the protocol gives no 'pre_prompt' setting"):
        get_task("gqa").build_request(gqa_sample(), {"prompt": "lmms-eval"})


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('name = "x"\nversion = \n', "malformed TOML"),
        ('name = "x"\n', "missing field 'version'"),
        ('version = "1"\n', "missing field 'name'"),
        ('name = "x"\nversion = "1"\ntask = {}\n', "unknown field 'task'"),
        ('name = "x"\nversion = "1"\ntasks = 3\n', "field 'tasks' must be a table"),
        ('name = "x"\nversion = "1"\n[tasks]\ngqa = 5\n', "field 'tasks.gqa' must be a table"),
        ('name = "x"\nversion = "1"\n[tasks.gqa]\nmax_new_tokens = "16"\n', "'tasks.gqa.max_new_tokens' must be"),
        ('name = "x"\nversion = "1"\n[tasks.gqa]\nmax_new_tokens = 0\n', "'tasks.gqa.max_new_tokens' must be"),
        ('name = "x"\nversion = "1"\n[tasks.gqa]\nstop = "ASSISTANT:"\n', "'tasks.gqa.stop' must be a list"),
        ('name = "x"\nversion = "1"\n[tasks.mmvet]\ntemperature = true\n', "'tasks.mmvet.temperature' must be"),
        ('name = "x"\nversion = "1"\n[tasks.gqa]\nprompt = 1\n', "'tasks.gqa.prompt' must be a string"),
        ('name = "x"\nversion = "1"\ndefaults = 1\n', "field 'defaults' must be a table"),
        ('name = "x"\nversion = "1"\n[defaults]\nreasoning_tags = ["<think>"]\n', "'defaults.reasoning_tags' must"),
        ('name = "x"\nversion = "1"\n[defaults]\nreasoning_tags = [["<t>", ""]]\n', "'defaults.reasoning_tags'"),
    ],
)
def test_a_malformed_file_is_a_one_line_error_naming_the_file_and_field(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError) as caught:
        load_protocol(str(path))
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and field in message and "\n" not in message


def test_an_unknown_name_or_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"unknown protocol 'nope'; valid protocols: .*llava15"):
        load_protocol("nope")
    with pytest.raises(UsageError, match=r"protocol file .*absent\.toml not found"):
        load_protocol(str(tmp_path / "absent.toml"))


# ----------------------------------------------------------------------------------------------
# through the CLI


@pytest.fixture(scope="module")
def demo_root() -> Path:
    from harness.data.demo import ensure_demo_root
    from harness.registry import get_tasks

    return ensure_demo_root(get_tasks("gqa"))


def _gqa_answers(root: Path, path: Path) -> Path:
    questions = json.loads((root / "gqa/data/testdev_balanced_questions.json").read_text())
    lines = []
    for line in (root / "gqa/llava_gqa_testdev_balanced.jsonl").read_text().splitlines():
        q = json.loads(line)
        text = questions[q["question_id"]]["answer"].capitalize() + "!"
        lines.append(json.dumps({"question_id": q["question_id"], "prompt": q["text"], "text": text}))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_score_cli_takes_a_protocol_file(demo_root: Path, tmp_path: Path) -> None:
    answers = _gqa_answers(demo_root, tmp_path / "answers.jsonl")
    common = ("score", "gqa", "--data-root", str(demo_root), "--answers", str(answers), "--json")
    official = harness(*common)
    assert official.returncode == 0, official.stderr
    path = edited_copy(LLAVA15, tmp_path / "exact.toml", "gqa", 'scorer = "official"', 'scorer = "lmms-eval"')
    mine = harness(*common, "--protocol", str(path))
    assert mine.returncode == 0, mine.stderr
    # "Yes!" is wrong for eval.py (it only drops a final "."), right for lmms-eval's exact match
    assert json.loads(official.stdout)["scores"]["accuracy"] < 100.0
    assert json.loads(mine.stdout)["scores"]["accuracy"] == pytest.approx(100.0)
    assert set(json.loads(mine.stdout)["metrics"]) == {"accuracy"}


def test_run_cli_records_the_settings_of_a_protocol_file(tmp_path: Path) -> None:
    path = edited_copy(LLAVA15, tmp_path / "short.toml", "gqa", "max_new_tokens = 128", "max_new_tokens = 8")
    text = path.read_text(encoding="utf-8").replace('name = "llava15"', 'name = "short"', 1)
    path.write_text(text, encoding="utf-8")
    out = tmp_path / "out"
    proc = harness(
        "run", "--tasks", "gqa", "--limit", "4", "--protocol", str(path), "--output-dir", str(out), "--no-progress"
    )
    assert proc.returncode == 0, proc.stderr
    run_dir = next(p for p in out.iterdir() if (p / "results.json").is_file())
    result = load_results(run_dir)
    assert result.protocol is not None and result.protocol.name == "short"
    assert result.tasks["gqa"].protocol_settings["max_new_tokens"] == 8
    # the identity of the run holds the file's content hash: in results.json, the store and compare/gate loading
    protocol = load_protocol(str(path))
    assert (result.protocol.source, result.protocol.content_hash) == (str(path), protocol.content_hash)
    who = RunIdentity.of(result)
    assert who.protocol_hash == protocol.content_hash != load_protocol("llava15").content_hash
    store = ResultsStore(default_store_url(out), readonly=True)
    with Session(store.engine) as session:
        assert session.execute(select(RunRow.protocol_hash)).scalars().all() == [protocol.content_hash]
    store.close()
    assert load_run(str(run_dir), "RUN").info == who.model_dump()
