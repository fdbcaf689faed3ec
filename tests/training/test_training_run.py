"""A few training steps of each stage on a very small model (CPU), and what the saved checkpoints load in."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.helpers.training_helpers import tiny_inputs
from training.recipe import load_recipe
from training.train import Outcome, build_model, train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return tiny_inputs(tmp_path_factory.mktemp("tiny"))


def recipe_for(stage: str, inputs: dict, out: Path, **extra):
    return load_recipe(stage, {**inputs, "output_dir": str(out), **extra})


def snapshot(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor], *parts: str) -> bool:
    """Whether any tensor whose name contains every one of ``parts`` changed."""
    keys = [k for k in before if all(part in k for part in parts)]
    assert keys, parts
    return any(not torch.equal(before[k], after[k]) for k in keys)


def test_pretrain_trains_only_the_connector_and_writes_mm_projector(inputs: dict, tmp_path: Path) -> None:
    recipe = recipe_for("pretrain", inputs, tmp_path / "pre", conv_mode=None)
    parts = build_model(recipe)
    before = snapshot(parts.model)
    outcome = train(recipe, parts)
    after = snapshot(parts.model)
    assert changed(before, after, "multi_modal_projector")
    assert not changed(before, after, "language_model") and not changed(before, after, "vision_tower")
    assert not changed(before, after, "lm_head")
    projector = torch.load(outcome.output_dir / "mm_projector.bin", weights_only=True)
    assert sorted(projector) == [f"model.mm_projector.{i}.{p}" for i in (0, 2) for p in ("bias", "weight")]
    assert torch.equal(projector["model.mm_projector.2.weight"], after["model.multi_modal_projector.linear_2.weight"])
    config = json.loads((outcome.output_dir / "config.json").read_text())
    assert config["conv_mode"] == "v1"  # plain template: the LLM's (LLaMA) chat template is declared
    assert config["tinyllava_training"]["stage"] == "pretrain" and config["tinyllava_training"]["step"] == 6


def test_finetune_keeps_the_tower_frozen_and_the_loss_falls(inputs: dict, tmp_path: Path) -> None:
    # The cosine schedule decays to 0 over these 24 steps, halving the mean rate: 1e-2 (not 3e-3) lets a
    # model this small (32 wide) reach the bar; at 3e-3 a plain constant-rate AdamW loop gets there, cosine not.
    recipe = recipe_for("finetune", inputs, tmp_path / "ft", max_steps=24, learning_rate=1e-2)
    parts = build_model(recipe)
    before = snapshot(parts.model)
    outcome = train(recipe, parts)
    after = snapshot(parts.model)
    assert changed(before, after, "language_model") and changed(before, after, "multi_modal_projector")
    assert not changed(before, after, "vision_tower")
    first, last = outcome.losses[0][1], sum(loss for _, loss in outcome.losses[-4:]) / 4
    assert last < 0.7 * first, outcome.losses
    assert not (outcome.output_dir / "mm_projector.bin").exists()


def test_share_stage_tunes_the_tower_from_a_layer(inputs: dict, tmp_path: Path) -> None:
    # Feature layer -1: with -2 (the default) the last of the tiny tower's two layers feeds nothing (no gradient).
    recipe = recipe_for("share", inputs, tmp_path / "share", vision_tune_from_layer=1, template="plain",
                        vision_feature_layer=-1)  # fmt: skip
    parts = build_model(recipe)
    trainable = {n for n, p in parts.model.named_parameters() if p.requires_grad}
    tower = [n for n in trainable if "vision_tower" in n]
    assert tower and all("encoder.layers.1." in n for n in tower)
    before = snapshot(parts.model)
    train(recipe, parts)
    after = snapshot(parts.model)
    # (the tower's own names: transformers 5 dropped the "vision_model." level that 4.x has)
    assert changed(before, after, "vision_tower.", "encoder.layers.1.")
    assert not changed(before, after, "vision_tower.", "encoder.layers.0.")
    assert not changed(before, after, "vision_tower.", "embeddings")


def test_lora_saves_the_merged_model_and_the_adapter(inputs: dict, tmp_path: Path) -> None:
    recipe = recipe_for("lora", inputs, tmp_path / "lora", lora_r=4, lora_alpha=8, learning_rate=1e-2,
                        connector_lr=1e-3, lora_targets=["q_proj", "v_proj"])  # fmt: skip
    parts = build_model(recipe)
    base = snapshot(parts.model.get_base_model())
    outcome = train(recipe, parts)
    saved = load_file(str(outcome.output_dir / "model.safetensors"))
    adapter = load_file(str(outcome.output_dir / "lora_adapter" / "adapter_model.safetensors"))
    a_key = next(k for k in adapter if "q_proj.lora_A" in k)
    b = adapter[a_key.replace("lora_A", "lora_B")]
    delta = 2.0 * b @ adapter[a_key]  # alpha / r = 2
    assert delta.abs().max() > 0
    def llm_key(state: dict, name: str) -> str:  # the vision tower has layers.0.self_attn.* too
        return next(k for k in state if "language_model" in k and name in k)

    q_base = llm_key(base, "layers.0.self_attn.q_proj.base_layer.weight")
    q_saved = llm_key(saved, "layers.0.self_attn.q_proj.weight")
    torch.testing.assert_close(saved[q_saved], base[q_base] + delta, rtol=1e-5, atol=1e-6)
    k_base = llm_key(base, "layers.0.self_attn.k_proj.weight")
    k_saved = llm_key(saved, "layers.0.self_attn.k_proj.weight")
    assert torch.equal(saved[k_saved], base[k_base])  # not a LoRA target: untouched
    assert not any("lora" in k for k in saved)
    assert (outcome.output_dir / "lora_adapter" / "non_lora_trainables.safetensors").is_file()
    assert not (outcome.output_dir / "adapter_config.json").exists()  # the top level is a plain HF Llava


def _final_weights(outcome: Outcome) -> dict[str, torch.Tensor]:
    return load_file(str(outcome.output_dir / "model.safetensors"))


def test_resume_from_a_checkpoint_gives_the_same_model(inputs: dict, tmp_path: Path) -> None:
    # An interrupted run is the uninterrupted one's checkpoint-2 alone in its output directory (a run stopped with
    # a smaller max_steps would not do: the learning-rate schedule depends on max_steps).
    common = {"max_steps": 4, "save_steps": 2, "save_total_limit": 3, "learning_rate": 1e-3}
    straight = train(recipe_for("finetune", inputs, tmp_path / "straight", **common))
    shutil.copytree(straight.output_dir / "checkpoint-2", tmp_path / "resumed" / "checkpoint-2")
    resumed = train(recipe_for("finetune", inputs, tmp_path / "resumed", **common, resume="auto"))
    assert resumed.global_step == 4
    assert [step for step, _ in resumed.losses] == [3, 4]
    for (_, expected), (_, got) in zip(straight.losses[2:], resumed.losses):
        assert got == pytest.approx(expected, rel=1e-4)
    a, b = _final_weights(straight), _final_weights(resumed)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-6)


def test_checkpoint_runs_in_the_harness_and_plain_transformers(inputs: dict, tmp_path: Path) -> None:
    outcome = train(recipe_for("finetune", inputs, tmp_path / "ft", max_steps=3))
    out = outcome.output_dir
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "run", "--tasks", "gqa,mme", "--limit", "4", "--model", f"tinyllava:{out}",
         "--output-dir", str(tmp_path / "results"), "--no-progress", "--no-cache"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    run = next(p for p in (tmp_path / "results").iterdir() if (p / "results.json").is_file())
    result = json.loads((run / "results.json").read_text())
    assert result["status"] == "complete" and result["model"]["template"] == "v1"
    assert result["tasks"]["gqa"]["n_errors"] == 0

    from PIL import Image
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    model = LlavaForConditionalGeneration.from_pretrained(out)
    processor = AutoProcessor.from_pretrained(out)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What color is it?"}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    assert prompt.endswith("USER: <image>\nWhat color is it? ASSISTANT:")
    batch = processor(images=[Image.new("RGB", (40, 40), "red")], text=[prompt], return_tensors="pt")
    generated = model.generate(**batch, max_new_tokens=3, do_sample=False)
    assert generated.shape[1] > batch["input_ids"].shape[1]


def test_eval_callback_records_the_training_step(inputs: dict, tmp_path: Path) -> None:
    from harness.results.store import ResultsStore, default_store_url

    evals = tmp_path / "evals"
    recipe = recipe_for("finetune", inputs, tmp_path / "cb", max_steps=4, save_steps=2, eval_tasks="gqa",
                        eval_limit=2, eval_output_dir=str(evals))  # fmt: skip
    train(recipe)
    store = ResultsStore(default_store_url(evals))
    runs = store.runs()
    steps = sorted(json.loads(r.results_json)["model"]["details"]["training_step"] for r in runs)
    assert steps == [2, 4]
    details = json.loads(runs[0].results_json)["model"]["details"]
    assert details["training_run"] == str((tmp_path / "cb").resolve())
    for run_dir in evals.iterdir():
        if (run_dir / "results.json").is_file():
            assert "training_step" in json.loads((run_dir / "results.json").read_text())["model"]["details"]


def test_bad_samples_do_not_stop_training(inputs: dict, tmp_path: Path, capsys) -> None:
    records = json.loads(Path(inputs["data_path"]).read_text())[:8]
    records[1]["image"] = "missing.jpg"
    records[2]["conversations"] = records[2]["conversations"][:1]
    broken = Path(inputs["image_folder"]) / "broken.jpg"
    broken.write_bytes(b"\x00" * 10)
    records[3]["image"] = "broken.jpg"
    records[4]["conversations"][0]["value"] += " padding" * 400  # the answer falls beyond max_length
    data = tmp_path / "bad.json"
    data.write_text(json.dumps(records))
    outcome = train(recipe_for("finetune", inputs, tmp_path / "bad", data_path=str(data), max_steps=4))
    assert outcome.global_step == 4
    assert outcome.skipped.startswith("skipped samples: 4 (")
    for reason in ("missing_image 1", "no_assistant_turn 1", "unreadable_image 1", "no_answer_within_max_length 1"):
        assert reason in outcome.skipped
    assert outcome.skipped in capsys.readouterr().out


def test_deepspeed_zero2_on_gloo(inputs: dict, tmp_path: Path) -> None:
    """One process, ZeRO-2 through the HF Trainer on the gloo backend (the first run JIT-compiles an op)."""
    pytest.importorskip("deepspeed")
    out = tmp_path / "ds"
    args = [f"--{k}={'null' if v is None else v}" for k, v in {**inputs, "output_dir": str(out)}.items()]
    proc = subprocess.run(
        [sys.executable, "-m", "training", "finetune", *args, "--deepspeed", "zero2", "--max_steps", "3"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "saved" in proc.stdout
    config = json.loads((out / "config.json").read_text())
    assert config["tinyllava_training"]["step"] == 3
    from transformers import LlavaForConditionalGeneration

    LlavaForConditionalGeneration.from_pretrained(out)
