"""``python -m training demo``: train the tiny demo TinyLLaVA that ``--model tinyllava:demo`` runs.

It writes the synthetic train-split data (``training.demo_data``), a byte-level BPE tokenizer trained on
its text, and the configs of a tiny LLaMA and a tiny SigLIP (no weights: random init), then runs the
``demo`` recipe through the same ``train`` as every other recipe, with the vision tower trained too.
The result goes to ``output/demo_checkpoint/`` under the current folder unless ``--output_dir`` names
another (weights stored in float16 to stay small), with ``training_log.json`` (steps, seconds, loss curve).
The shipped checkpoint ``model_adapters/demo_checkpoint/`` is never written: to replace it, train
elsewhere and copy the folder over it. It takes about two minutes on two CPU cores.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from model_adapters.demo_model import DEMO_CHECKPOINT_DIR, train_tokenizer
from model_adapters.templates import DEFAULT_SYSTEM, TEMPLATES
from training.recipe import Recipe, load_recipe
from training.train import Outcome, train

DEMO_SEED = 0
N_SCENES = 6000
VOCAB_SIZE = 640
IMAGE_SIZE = 48
PATCH_SIZE = 8
DEFAULT_OUTPUT = Path("output") / "demo_checkpoint"


def write_tiny_llm(
    folder: Path, texts: list[str], hidden: int = 128, layers: int = 2, vocab_size: int = VOCAB_SIZE
) -> Path:
    """A tokenizer trained on ``texts`` and a tiny LLaMA config (no weights), in ``folder``."""
    from transformers import LlamaConfig

    prompt = [f"{DEFAULT_SYSTEM} USER: ASSISTANT:", *(t.stop for t in TEMPLATES.values())]
    # The prompt frame is in every sample: weight it like the texts, so BPE gives it whole-word tokens.
    tokenizer = train_tokenizer([*prompt * max(1, len(texts) // 4), *texts], vocab_size=vocab_size)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    folder.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_tiny_tower(folder: Path, image_size: int = IMAGE_SIZE, hidden: int = 96, layers: int = 3) -> Path:
    """A tiny SigLIP vision config (no weights) in ``folder``."""
    from transformers import SiglipVisionConfig

    config = SiglipVisionConfig(
        image_size=image_size,
        patch_size=PATCH_SIZE,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        vision_use_head=False,
    )
    folder.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(folder)
    return folder


def prepare_inputs(work: Path, n_scenes: int = N_SCENES, seed: int = DEMO_SEED) -> dict[str, str]:
    """Data, tokenizer and configs under ``work``; the recipe fields that point at them."""
    from training import demo_data

    data_path, images = demo_data.write_dataset(work / "data", seed, n_scenes)
    records = json.loads(data_path.read_text())
    llm = write_tiny_llm(work / "llm", demo_data.corpus(records))
    tower = write_tiny_tower(work / "vision")
    return {"data_path": str(data_path), "image_folder": str(images), "llm": str(llm), "vision_tower": str(tower)}


def compact(folder: Path, outcome: Outcome, recipe: Recipe) -> None:
    """Keep only what the adapter needs, weights in float16, plus the training log."""
    from safetensors.torch import load_file, save_file

    for child in folder.iterdir():
        if child.is_dir() and child.name.startswith("checkpoint-"):
            shutil.rmtree(child)
    for name in ("training_recipe.json", "skipped_samples.jsonl", "training_args.bin"):
        (folder / name).unlink(missing_ok=True)
    weights = folder / "model.safetensors"
    tensors = {k: v.half().contiguous() for k, v in load_file(str(weights)).items()}
    save_file(tensors, str(weights), metadata={"format": "pt"})
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text())
    for part in ("text_config", "vision_config"):  # the temporary folders the parts were built in
        config.get(part, {}).pop("_name_or_path", None)
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    log = {
        "steps": outcome.global_step,
        "seconds": round(outcome.seconds, 1),
        "seed": recipe.seed,
        "loss": [[step, round(loss, 4)] for step, loss in outcome.losses],
        "rebuild": "python -m training demo",
    }
    (folder / "training_log.json").write_text(json.dumps(log, indent=1) + "\n")


def check_output(output: Path) -> None:
    """Refuse an output folder that is (or holds) the shipped checkpoint, or holds something other than a
    previous demo training (the folder is replaced)."""
    from training.recipe import RecipeError

    resolved, shipped = output.expanduser().resolve(), DEMO_CHECKPOINT_DIR.resolve()
    if resolved == shipped or shipped.is_relative_to(resolved):
        raise RecipeError(
            f"output_dir {output} would overwrite the shipped demo checkpoint {DEMO_CHECKPOINT_DIR}; train into "
            "another folder (default output/demo_checkpoint) and copy it there if you mean to replace it"
        )
    if resolved.is_file() or (resolved.is_dir() and any(resolved.iterdir())
                              and not (resolved / "training_log.json").is_file()):  # fmt: skip
        raise RecipeError(f"output_dir {output} exists and is not an earlier demo training; pick another folder")


def run_demo(
    overrides: dict[str, Any] | list[str] = (),
    work: Path | None = None,
    n_scenes: int = N_SCENES,
    callbacks: Sequence[Any] = (),
) -> Outcome:
    """Train the demo model (``overrides`` as for any recipe; default output: ``output/demo_checkpoint``, never
    the shipped checkpoint)."""
    settings = {"output_dir": str(DEFAULT_OUTPUT), **_as_dict(overrides)}
    check_output(Path(str(settings["output_dir"])))
    own = work is None
    work = Path(tempfile.mkdtemp(prefix="demo-train-")) if own else Path(work)
    try:
        inputs = prepare_inputs(work, n_scenes)
        recipe = load_recipe("demo", {**inputs, **settings})
        output = Path(recipe.output_dir)
        check_output(output)
        if output.exists():
            shutil.rmtree(output)
        outcome = train(recipe, callbacks=callbacks)
        compact(output, outcome, recipe)
        print(f"demo model: {outcome.global_step} steps in {outcome.seconds:.0f} s -> {output}")
        return outcome
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)


def _as_dict(overrides: dict[str, Any] | list[str]) -> dict[str, Any]:
    from training.recipe import parse_overrides

    return dict(overrides) if isinstance(overrides, dict) else parse_overrides(list(overrides))
