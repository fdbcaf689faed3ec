"""``python -m training``: --help on every stage, the progress bar, the demo's output folder."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

import pytest

from training.__main__ import STAGES, main

pytest.importorskip("yaml")


@pytest.mark.parametrize("stage", [*STAGES, "fields"])
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_works_on_every_stage(stage: str, flag: str, capsys) -> None:
    extra = ["--learning_rate", "1e-4"] if stage != "fields" else []
    assert main([stage, *extra, flag]) == 0
    out = capsys.readouterr()
    assert out.out.startswith(f"usage: python -m training {stage}") and out.err == ""
    if stage != "fields":
        assert "--no-progress" in out.out and "learning_rate" in out.out
    if stage == "demo":
        assert "--scenes" in out.out and "output/demo_checkpoint" in out.out


def test_top_level_help_and_unknown_stage(capsys) -> None:
    assert main(["--help"]) == 0
    assert "STAGE --help" in capsys.readouterr().out
    assert main(["bogus", "--help"]) == 2
    assert "unknown stage 'bogus'" in capsys.readouterr().err


def test_progress_line_has_eta_and_tokens_per_second() -> None:
    from training.progress import progress_line

    line = progress_line(25, 100, 50.0, 10_000, 1.5)
    assert "25/100" in line and "25%" in line and "00:50<02:30" in line and "200 tok/s" in line
    assert "loss 1.5000" in line
    assert "?" in progress_line(0, 10, 0.0, 0, None)


def test_progress_bar_callback_draws_as_the_trainer_calls_it() -> None:
    from training.progress import ProgressBar

    stream = io.StringIO()
    bar = ProgressBar(stream=stream, interval=0.0)
    args = SimpleNamespace(include_num_input_tokens_seen="no")
    state = SimpleNamespace(global_step=0, max_steps=4, num_input_tokens_seen=0, is_world_process_zero=True)
    bar.on_train_begin(args, state, None)
    assert args.include_num_input_tokens_seen == "non_padding"  # the Trainer counts tokens for us
    for step in range(1, 5):
        state.global_step, state.num_input_tokens_seen = step, step * 100
        bar.on_log(args, state, None, logs={"loss": 3.0 - step / 2})
        bar.on_step_end(args, state, None)
    bar.on_train_end(args, state, None)
    lines = stream.getvalue().splitlines()  # not a terminal: plain lines
    assert len(lines) == 5 and lines[-1].startswith("[" + "#" * 24 + "] 4/4 100%")
    assert "tok/s" in lines[-1] and "loss 1.0000" in lines[-1]
    hidden = ProgressBar(stream=io.StringIO(), interval=0.0)
    state.is_world_process_zero = False
    hidden.on_train_begin(args, state, None)
    hidden.on_train_end(args, state, None)
    assert hidden.lines == []


def test_demo_refuses_the_shipped_checkpoint_and_foreign_folders(tmp_path: Path, capsys) -> None:
    from model_adapters.demo_model import DEMO_CHECKPOINT_DIR

    for target in (DEMO_CHECKPOINT_DIR, DEMO_CHECKPOINT_DIR.parent):
        assert main(["demo", "--output_dir", str(target), "--max_steps", "1"]) == 2
        assert "shipped demo checkpoint" in capsys.readouterr().err
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    assert main(["demo", "--output_dir", str(foreign), "--max_steps", "1"]) == 2
    assert "not an earlier demo training" in capsys.readouterr().err
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_demo_writes_to_an_output_folder_by_default(tmp_path: Path, monkeypatch, capsys) -> None:
    from model_adapters.demo_model import DEMO_CHECKPOINT_DIR

    def stamps() -> dict[str, int]:
        return {p.name: p.stat().st_mtime_ns for p in DEMO_CHECKPOINT_DIR.glob("*")}

    shipped = stamps()
    monkeypatch.chdir(tmp_path)
    args = ["demo", "--scenes", "24", "--max_steps", "3", "--per_device_batch_size", "4", "--global_batch_size", "4",
            "--logging_steps", "1"]  # fmt: skip
    assert main(args) == 0
    out = tmp_path / "output" / "demo_checkpoint"
    assert (out / "model.safetensors").is_file() and (out / "training_log.json").is_file()
    captured = capsys.readouterr()
    assert "3/3 100%" in captured.err and "tok/s" in captured.err
    assert main(args) == 0  # an earlier demo training in the folder is replaced
    assert stamps() == shipped
