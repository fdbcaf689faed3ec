"""Recipes: the files, overrides, and one-line errors before anything is loaded."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from training.recipe import RECIPES_DIR, Recipe, RecipeError, load_recipe, parse_overrides, validate


@pytest.fixture
def data(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "data.json").write_text("[]")
    (tmp_path / "images").mkdir()
    return {"data_path": str(tmp_path / "data.json"), "image_folder": str(tmp_path / "images"),
            "output_dir": str(tmp_path / "out")}  # fmt: skip


@pytest.mark.parametrize("name", ["pretrain", "finetune", "share", "lora", "qlora"])
def test_recipe_files_load_with_the_paper_settings(name: str, data: dict[str, str]) -> None:
    recipe = load_recipe(name, data)
    expected = {
        "pretrain": ("frozen", "frozen", "full", 1e-3, 256, "zero2"),
        "finetune": ("full", "frozen", "full", 2e-5, 128, "zero3"),
        "share": ("full", "partial", "full", 2e-5, 256, "zero3"),
        "lora": ("lora", "frozen", "full", 2e-4, 128, "zero2"),
        "qlora": ("lora", "frozen", "full", 2e-4, 128, "zero2"),
    }[name]
    got = (recipe.tune_llm, recipe.tune_vision, recipe.tune_connector, recipe.learning_rate,
           recipe.global_batch_size, recipe.deepspeed)  # fmt: skip
    assert got == expected
    assert recipe.lr_scheduler == "cosine" and recipe.warmup_ratio == 0.03
    if name == "share":
        assert recipe.vision_tune_from_layer == 12
    if name in ("lora", "qlora"):
        assert (recipe.lora_r, recipe.lora_alpha, recipe.connector_lr) == (128, 256, 2e-5)
    if name == "qlora":
        assert (recipe.bits, recipe.quant_type, recipe.double_quant) == (4, "nf4", True)


def test_every_recipe_file_is_checked() -> None:
    assert {p.stem for p in RECIPES_DIR.glob("*.yaml")} == {"pretrain", "finetune", "share", "lora", "qlora", "demo"}


def test_overrides_in_all_three_spellings(data: dict[str, str]) -> None:
    words = ["--set", "learning_rate=1e-4", "--per_device_batch_size", "8", "--tune-vision=partial",
             "--lora_targets", "q_proj,v_proj", "--deepspeed", "null", "--gradient_checkpointing", "false"]  # fmt: skip
    recipe = load_recipe("finetune", [*words, *(f"--{k}={v}" for k, v in data.items())])
    assert recipe.learning_rate == 1e-4 and recipe.per_device_batch_size == 8 and recipe.tune_vision == "partial"
    assert recipe.lora_targets == ["q_proj", "v_proj"] and recipe.deepspeed is None
    assert recipe.gradient_checkpointing is False


def test_gradient_accumulation_follows_the_world_size() -> None:
    recipe = Recipe(global_batch_size=128, per_device_batch_size=16)
    assert [recipe.gradient_accumulation(n) for n in (1, 2, 8)] == [8, 4, 1]
    with pytest.raises(RecipeError, match="not a multiple"):
        recipe.gradient_accumulation(3)


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["--learning_rat", "1e-3"], "unknown recipe field 'learning_rat'"),
        (["--learning_rate", "fast"], "recipe field learning_rate: expected a number, got 'fast'"),
        (["--per_device_batch_size", "2.5"], "per_device_batch_size: expected an integer"),
        (["--gradient_checkpointing", "maybe"], "gradient_checkpointing: expected true or false"),
        (["--tune_llm", "half"], "tune_llm: 'half' is not one of full, frozen, lora"),
        (["--template", "chatml"], "template: 'chatml' is not one of"),
        (["--global_batch_size", "100"], "not a multiple"),
        (["--bits", "4"], "needs tune_llm lora"),
        (["--deepspeed", "zero9"], "neither zero2, zero3 nor a JSON file"),
        (["--max_length"], "needs a value"),
        (["stray"], "unexpected argument 'stray'"),
    ],
)
def test_bad_overrides_give_one_line_errors(words: list[str], message: str, data: dict[str, str]) -> None:
    with pytest.raises(RecipeError) as info:
        load_recipe("finetune", [*words, *(f"--{k}={v}" for k, v in data.items())])
    assert message in str(info.value) and "\n" not in str(info.value)


def test_required_fields_and_missing_files(data: dict[str, str], tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="data_path is required"):
        load_recipe("finetune", {"output_dir": data["output_dir"]})
    with pytest.raises(RecipeError, match=r"image_folder: .* does not exist"):
        load_recipe("finetune", {**data, "image_folder": str(tmp_path / "nowhere")})
    recipe = Recipe(init_from=None, llm=None, vision_tower="x", data_path=data["data_path"], output_dir="o",
                    deepspeed=None)  # fmt: skip
    with pytest.raises(RecipeError, match="llm is required"):
        validate(recipe)


def test_bad_yaml_file_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("learning_rate: [1, 2\n")
    with pytest.raises(RecipeError, match=r"bad\.yaml: not valid YAML"):
        load_recipe(str(bad))
    bad.write_text("warmup_steps: 3\n")
    with pytest.raises(RecipeError, match=r"bad\.yaml: unknown recipe field 'warmup_steps'"):
        load_recipe(str(bad))


def test_parse_overrides_types() -> None:
    assert parse_overrides(["--eval_limit", "null", "--connector_lr", "2e-5", "--epochs", "3"]) == {
        "eval_limit": None, "connector_lr": 2e-5, "epochs": 3.0,
    }  # fmt: skip


def test_cli_rejects_a_bad_field_before_loading_any_model(data: dict[str, str]) -> None:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "training", "finetune", "--learning_rate", "abc",
         *(f"--{k}={v}" for k, v in data.items())],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: recipe field learning_rate: expected a number, got 'abc'"
    assert time.perf_counter() - start < 30  # nothing heavy was imported or loaded
    assert "torch" not in proc.stdout


def test_cli_lists_the_fields() -> None:
    proc = subprocess.run([sys.executable, "-m", "training", "fields"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "vision_tune_from_layer (an integer, default 0)" in proc.stdout
