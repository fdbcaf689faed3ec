"""A short training-throughput check for a GPU (``bench/gpu_train_check.sh`` runs it).

A randomly initialised model at TinyLLaVA-1.5B shape (TinyLlama-1.1B + SigLIP-so400m at 384 px, 729 image
tokens) finetunes for ``--steps`` steps on synthetic demo data under DeepSpeed ZeRO-2, in bf16, with
flash-attention 2 when it is importable (sdpa otherwise). It prints tokens per second (non-padding tokens,
after the warm-up steps), peak GPU memory and which attention ran. ``--tiny`` swaps in toy shapes and fp32 so
the same code runs on a CPU (what the tests do). Nothing is downloaded and nothing is saved.

    python -m training.gpu_check [--steps 20] [--batch 8] [--deepspeed zero2|zero3|none] [--tiny]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

TINYLLAMA_1B = {"hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 22, "num_attention_heads": 32,
                "num_key_value_heads": 4, "max_position_embeddings": 2048, "rms_norm_eps": 1e-5, "vocab_size": 32000}
SIGLIP_SO400M = {"image_size": 384, "patch_size": 14, "hidden_size": 1152, "intermediate_size": 4304,
                 "num_hidden_layers": 27, "num_attention_heads": 16}
TOY_LLM = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
           "num_key_value_heads": 2, "max_position_embeddings": 1024}
TOY_TOWER = {"image_size": 32, "patch_size": 8, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
             "num_attention_heads": 2}  # fmt: skip
WARMUP_STEPS = 3


def write_model_configs(work: Path, tiny: bool, texts: list[str]) -> tuple[Path, Path]:
    """(LLM dir with tokenizer + config, tower dir with config): configs only, so weights are random."""
    from transformers import LlamaConfig, SiglipVisionConfig

    from model_adapters.demo_model import train_tokenizer

    tokenizer = train_tokenizer(texts, vocab_size=512)
    shape = dict(TOY_LLM if tiny else TINYLLAMA_1B)
    shape["vocab_size"] = max(shape.get("vocab_size", 0), len(tokenizer))
    llm_config = LlamaConfig(**shape, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                             pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False)  # fmt: skip
    llm, tower = work / "llm", work / "vision"
    llm_config.save_pretrained(llm)
    tokenizer.save_pretrained(llm)
    SiglipVisionConfig(**(TOY_TOWER if tiny else SIGLIP_SO400M), vision_use_head=False).save_pretrained(tower)
    return llm, tower


class Throughput:
    """Per optimizer step: seconds, and the sequence tokens (attention mask, image tokens included) the model saw."""

    def __init__(self) -> None:
        self.tokens: list[int] = []
        self.seconds: list[float] = []
        self.pending = 0  # tokens of the micro-batches since the last step

    def count(self, module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        """A forward pre-hook on the Llava model (runs in the main process, unlike the collator)."""
        mask = kwargs.get("attention_mask")
        if mask is not None:
            self.pending += int(mask.sum())

    def end_step(self, seconds: float) -> None:
        self.seconds.append(seconds)
        self.tokens.append(self.pending)
        self.pending = 0

    def tokens_per_second(self, skip: int = WARMUP_STEPS) -> float:
        seconds = sum(self.seconds[skip:])
        return sum(self.tokens[skip:]) / seconds if seconds > 0 else 0.0


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m training.gpu_check", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=8, help="per-device batch size")
    parser.add_argument("--deepspeed", default="zero2", choices=("zero2", "zero3", "none"))
    parser.add_argument("--tiny", action="store_true", help="toy shapes and fp32, for a CPU")
    args = parser.parse_args(argv)

    import torch
    from transformers import TrainerCallback

    from training import demo_data
    from training.recipe import load_recipe
    from training.train import llava_of, make_trainer

    meter = Throughput()

    class StepTimer(TrainerCallback):
        def on_step_begin(self, *a: Any, **k: Any) -> None:
            self.start = time.perf_counter()

        def on_step_end(self, *a: Any, **k: Any) -> None:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            meter.end_step(time.perf_counter() - self.start)

    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        work = Path(tmp)
        data_path, images = demo_data.write_dataset(work / "data", 0, args.steps * args.batch + 8)
        llm, tower = write_model_configs(work, args.tiny, demo_data.corpus(json.loads(data_path.read_text())))
        gpu = torch.cuda.is_available() and not args.tiny
        recipe = load_recipe("finetune", {
            "llm": str(llm), "vision_tower": str(tower), "data_path": str(data_path), "image_folder": str(images),
            "output_dir": str(work / "out"), "template": "v1", "image_aspect_ratio": "pad",
            "deepspeed": None if args.deepspeed == "none" else args.deepspeed,
            "precision": "bf16" if gpu else "fp32", "attn": "auto", "gradient_checkpointing": True,
            "per_device_batch_size": args.batch, "global_batch_size": args.batch, "max_steps": args.steps,
            "max_length": 2048, "save_steps": 10**9, "logging_steps": 1, "num_workers": 2 if gpu else 0,
            "group_by_modality_length": False, "learning_rate": 2e-5,
        })  # fmt: skip
        trainer, _, recorder = make_trainer(recipe, callbacks=[StepTimer()])
        llava_of(trainer.model).register_forward_pre_hook(meter.count, with_kwargs=True)
        if gpu:
            torch.cuda.reset_peak_memory_stats()
        trainer.train()
        model = trainer.accelerator.unwrap_model(trainer.model)
        attention = model.config.text_config._attn_implementation
        report = {
            "device": torch.cuda.get_device_name(0) if gpu else "cpu",
            "shape": "toy" if args.tiny else "TinyLlama-1.1B + SigLIP-so400m-384 (random init)",
            "parameters_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
            "deepspeed": args.deepspeed,
            "precision": recipe.precision,
            "attention": attention,
            "flash_attention_used": attention == "flash_attention_2",
            "flash_attn_importable": importlib.util.find_spec("flash_attn") is not None,
            "steps": trainer.state.global_step,
            "tokens_per_second": round(meter.tokens_per_second(), 1),
            "peak_memory_GiB": round(torch.cuda.max_memory_allocated() / 2**30, 2) if gpu else None,
            "peak_reserved_GiB": round(torch.cuda.max_memory_reserved() / 2**30, 2) if gpu else None,
            "loss_first_last": [recorder.losses[0][1], recorder.losses[-1][1]] if recorder.losses else None,
        }
    for key, value in report.items():
        print(f"{key:>22}: {value}")
    return report


if __name__ == "__main__":
    run()
