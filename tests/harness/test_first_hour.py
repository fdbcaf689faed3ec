"""A new user's first hour, through the real command line: light commands stay light, the results table is on
stdout and the rest on stderr, lmms-eval's spellings work, and mistakes get a one-line error with a hint."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cli import COMMAND_MODULES, COMMANDS, build_parser

HEAVY = ("torch", "transformers")
PLUGIN = '''
from tasks.gqa import GQATask


class RenamedGQA(GQATask):
    """GQA under another name: a task plugin found through --include_path."""

    name = "my_gqa"
    description = "GQA again, from a user's plugin folder"
    default_settings = {"llava15": {"prompt": "llava", "max_new_tokens": 128, "scorer": "official"}}
'''


def harness(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})  # fmt: skip


def only_results(out: Path) -> dict:
    found = list(out.glob("*/results.json"))
    assert len(found) == 1, found
    return json.loads(found[0].read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("plugins")
    (folder / "my_task.py").write_text(PLUGIN, encoding="utf-8")
    return folder


# ------------------------------------------------------------------------------------------------------------
# 1. commands that need no model import neither torch nor transformers


@pytest.mark.parametrize(("args", "heavy"), [
    (["list"], HEAVY), (["list", "--json"], HEAVY), (["data"], HEAVY), (["run", "--help"], HEAVY),
    (["score", "--help"], HEAVY), (["data", "gqa"], HEAVY),
    # the top-level help builds every subcommand's parser: no store (SQLAlchemy) or statistics (numpy) stack either
    (["--help"], (*HEAVY, "sqlalchemy", "numpy")),
])  # fmt: skip
def test_light_commands_import_no_model_stack(args: list[str], heavy: tuple[str, ...]) -> None:
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['harness', *{args!r}]\n"
        "try:\n    runpy.run_module('harness', run_name='__main__')\n"
        "except SystemExit as exc:\n    code = exc.code\n"
        f"print('HEAVY=' + ','.join(m for m in {heavy!r} if m in sys.modules), 'EXIT=' + str(code), file=sys.stderr)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    last = proc.stderr.strip().splitlines()[-1]
    assert last == "HEAVY= EXIT=0", proc.stderr


def test_the_command_table_names_what_each_module_adds() -> None:
    assert set(COMMANDS.values()) == set(COMMAND_MODULES)
    for name, module in COMMANDS.items():
        parser = build_parser([name])
        choices = next(a for a in parser._actions if a.dest == "command").choices
        assert name in choices, (name, module)


def test_list_still_shows_adapter_descriptions() -> None:
    proc = harness("list", "--json")
    assert proc.returncode == 0, proc.stderr
    models = {m["name"]: m["description"] for m in json.loads(proc.stdout)["models"]}
    assert set(models) >= {"tinyllava", "hf", "openai"} and all(models.values())


# ------------------------------------------------------------------------------------------------------------
# 6, 7, 9. run and score: the table on stdout, the rest on stderr; lmms-eval spellings


def test_lmms_eval_spellings_parse_as_the_canonical_flags(tmp_path: Path) -> None:
    common = ["run", "--tasks", "gqa", "--limit", "4"]
    ours = ["--model-args", "conv=v1", "--batch-size", "3", "--output-dir", str(tmp_path)]
    theirs = ["--model_args", "conv=v1", "--batch_size", "3", "--output_path", str(tmp_path)]
    parser = build_parser(common)
    assert vars(parser.parse_args(common + ours)) == vars(parser.parse_args(common + theirs))


def test_run_with_lmms_eval_flags_prints_the_table_on_stdout(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = harness("run", "--tasks", "gqa", "--limit", "4", "--output_path", str(out), "--batch_size", "2",
                   "--log_samples", "--gen_kwargs", "max_new_tokens=16,temperature=0", "--no-progress")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "accuracy" in proc.stdout and "[DEMO]" in proc.stdout
    assert "DEMO MODEL" not in proc.stdout and "results:" not in proc.stdout
    assert "DEMO MODEL" in proc.stderr and "results: " in proc.stderr and "accuracy" not in proc.stderr
    assert sum("--log_samples" in line for line in proc.stderr.splitlines()) == 1
    result = only_results(out)
    assert result["spec"]["batch_size"] == 2
    assert result["tasks"]["gqa"]["protocol_settings"]["max_new_tokens"] == 16
    log = next(out.glob("*/samples/gqa.jsonl"))

    score = harness("score", "gqa", "--answers", str(log), env={"HARNESS_DATA_ROOT": ""})
    assert score.returncode == 0, score.stderr
    assert "accuracy" in score.stdout and "DEMO DATA" in score.stderr and "DEMO DATA" not in score.stdout


def test_config_file_flags_apply_and_the_command_line_wins(tmp_path: Path, plugin_dir: Path) -> None:
    from harness.data.demo import ensure_demo_root
    from harness.registry import get_task

    root = ensure_demo_root([get_task("gqa")])  # the plugin task reads GQA's files
    out = tmp_path / "out"
    config = tmp_path / "run.yaml"
    config.write_text(
        f"tasks: [my_gqa]\nlimit: 4\nbatch_size: 3\noutput_path: {json.dumps(str(out))}\n"
        f"include_path: {json.dumps(str(plugin_dir))}\ndata_root: {json.dumps(str(root))}\nno_progress: true\n",
        encoding="utf-8",
    )
    proc = harness("run", "--config", str(config), "--batch-size", "2")
    assert proc.returncode == 0, proc.stderr
    result = only_results(out)
    assert list(result["tasks"]) == ["my_gqa"] and result["spec"]["limit"] == 4
    assert result["spec"]["batch_size"] == 2  # the command line over the file's 3
    assert "my_gqa" in proc.stdout


def test_tasks_list_includes_plugin_tasks(plugin_dir: Path) -> None:
    proc = harness("run", "--tasks", "list", "--include_path", str(plugin_dir))
    assert proc.returncode == 0, proc.stderr
    assert {"gqa", "mme", "my_gqa"} <= set(proc.stdout.split())


@pytest.mark.parametrize(("args", "expected"), [
    (["run", "--tasks", "gqq"], "did you mean 'gqa'?"),
    (["run", "--tasks", "gqa", "--limt", "4"], "did you mean --limit?"),
    (["lsit"], "did you mean list?"),
    (["run", "--tasks", "gqa", "--gen_kwargs", "temperatur=0.2"], "did you mean 'temperature'?"),
    (["run", "--tasks", "gqa", "--gen_kwargs", "top_k=5"], "not supported"),
    (["run", "--tasks", "gqa", "--gen_kwargs", "repetition_penalty=1.1"], "supported: max_new_tokens"),
])  # fmt: skip
def test_mistakes_are_one_line_with_a_hint(args: list[str], expected: str) -> None:
    proc = harness(*args)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], proc.stderr


def test_config_with_a_misspelt_flag_names_it(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text("tasks: gqa\nbatch_sise: 2\n", encoding="utf-8")
    proc = harness("run", "--config", str(config))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "unknown flag 'batch_sise'" in proc.stderr and "did you mean 'batch_size'?" in proc.stderr


# ------------------------------------------------------------------------------------------------------------
# 8. data prepare --source hf without network


def _hub_resolves() -> bool:
    try:
        socket.getaddrinfo("huggingface.co", 443)
    except OSError:
        return False
    return True


def test_prepare_from_an_unreachable_hub_is_one_line(tmp_path: Path) -> None:
    if _hub_resolves():
        pytest.skip("huggingface.co resolves here: this test is for a machine without network")
    env = {"HF_HUB_OFFLINE": "0", "HF_HOME": str(tmp_path / "hf"), "HF_HUB_ETAG_TIMEOUT": "5"}
    root = tmp_path / "root"
    root.mkdir()
    proc = harness("data", "prepare", "gqa", "--source", "hf", "--data-root", str(root), env=env)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "unreachable" in proc.stderr and "--source DIR" in proc.stderr


def test_a_config_file_of_garbage_bytes_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"\x00\xffgarbage")
    proc = subprocess.run([sys.executable, "-m", "harness", "run", "--config", str(bad)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [f"error: --config {bad}: not UTF-8 text (invalid start byte at byte 1)"]
