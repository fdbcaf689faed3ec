"""The training run: build the model and data from a recipe, train with the HF Trainer, save HF Llava.

The Trainer subclass adds what LLaVA-style training needs: the modality/length sampler, optimizer groups
with their own connector and vision-tower learning rates, a blank-image pass for batches without images
(every rank runs the same modules, which ZeRO-3 and DDP require), and checkpoints written by ``saving``.
DeepSpeed ZeRO-2/3 comes from ``training/configs``; launchers (deepspeed, torchrun, accelerate) set the
process group, and a plain ``python -m training`` run with DeepSpeed gets a one-process group.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

from model_adapters.formats.runtime import llava_parts
from training.data import DataSettings, LlavaCollator, LlavaDataset, SkipLog, load_records
from training.model import (
    add_lora,
    assemble,
    choose_attention,
    count_parameters,
    image_token_count,
    load_language_model,
    load_llava,
    load_projector,
    load_tokenizer,
    load_vision_tower,
    set_trainable,
)
from training.recipe import Recipe, describe, world_size
from training.sampler import ModalityLengthSampler
from training.saving import LORA_DIR, load_lora_parts, load_saved_weights, save_checkpoint

SKIP_LOG = "skipped_samples.jsonl"


@dataclass
class ModelParts:
    """A Llava model (or its PEFT wrapper) with the tokenizer and image processor that go with it;
    ``prepared`` once :func:`prepare_model` has set what trains (and added LoRA)."""

    model: Any
    tokenizer: Any
    image_processor: Any
    prepared: bool = False


@dataclass
class Outcome:
    """What a finished run reports."""

    output_dir: Path
    global_step: int
    losses: list[tuple[int, float]] = field(default_factory=list)
    skipped: str = ""
    seconds: float = 0.0


def load_dtype(recipe: Recipe) -> torch.dtype:
    """Weights in half precision only under DeepSpeed (it keeps fp32 master copies); else fp32 + autocast."""
    if recipe.deepspeed is None or recipe.precision == "fp32":
        return torch.float32
    return torch.bfloat16 if recipe.precision == "bf16" else torch.float16


def quantization_config(recipe: Recipe) -> Any:
    if recipe.bits == 16:
        return None
    from transformers import BitsAndBytesConfig

    compute = torch.bfloat16 if recipe.precision == "bf16" else torch.float16
    if recipe.bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_compute_dtype=compute,
        bnb_4bit_use_double_quant=recipe.double_quant,
        bnb_4bit_quant_type=recipe.quant_type,
    )


def check_device(recipe: Recipe) -> None:
    """Problems that only the machine can tell (before any weight is loaded)."""
    import importlib.util

    if recipe.bits != 16:
        if not torch.cuda.is_available():
            raise SystemExit("error: QLoRA (bits 4/8) needs a CUDA GPU (bitsandbytes)")
        if importlib.util.find_spec("bitsandbytes") is None:
            raise SystemExit("error: QLoRA (bits 4/8) needs bitsandbytes: pip install bitsandbytes")
    if recipe.attn == "flash_attention_2" and importlib.util.find_spec("flash_attn") is None:
        raise SystemExit("error: attn flash_attention_2 needs flash-attn installed (or use attn auto)")
    if recipe.precision == "bf16" and torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        raise SystemExit("error: this GPU has no bf16; use --precision fp16")


def build_model(recipe: Recipe) -> ModelParts:
    """Assemble (or load) the model, apply a stage-1 projector, set what trains, add LoRA."""
    dtype, attn = load_dtype(recipe), choose_attention(recipe.attn)
    if recipe.init_from:
        model, tokenizer, image_processor = load_llava(recipe.init_from, dtype, attn)
    else:
        llm = load_language_model(recipe.llm, dtype, attn, quantization_config(recipe))
        tower, image_processor = load_vision_tower(recipe.vision_tower, dtype, attn)
        tokenizer = load_tokenizer(recipe.llm)
        model = assemble(llm, tower, tokenizer, recipe.vision_feature_layer, recipe.vision_feature_select_strategy)
    if recipe.projector:
        load_projector(model, recipe.projector)
    return prepare_model(ModelParts(model, tokenizer, image_processor), recipe)


def prepare_model(parts: ModelParts, recipe: Recipe) -> ModelParts:
    """Freeze/unfreeze per the recipe and wrap with LoRA (once: prepared parts are returned as they are)."""
    if parts.prepared:
        return parts
    model = parts.model
    set_trainable(model, recipe.tune_llm, recipe.tune_vision, recipe.tune_connector, recipe.vision_tune_from_layer)
    if recipe.tune_llm == "lora":
        if recipe.bits != 16:
            from peft import prepare_model_for_kbit_training

            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=recipe.gradient_checkpointing)
        model = add_lora(model, recipe.lora_r, recipe.lora_alpha, recipe.lora_dropout, recipe.lora_targets)
    trainable, total = count_parameters(model)
    if trainable == 0:
        raise SystemExit("error: the recipe trains nothing (tune_llm, tune_vision and tune_connector all frozen)")
    print(f"model: {total / 1e6:.2f}M parameters, {trainable / 1e6:.3f}M trainable")
    return ModelParts(model, parts.tokenizer, parts.image_processor, prepared=True)


def llava_of(model: Any) -> Any:
    """The Llava model inside a PEFT wrapper (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def build_dataset(recipe: Recipe, parts: ModelParts, skip_log: SkipLog) -> LlavaDataset:
    config = llava_of(parts.model).config
    settings = DataSettings(
        template=recipe.template,
        max_length=recipe.max_length,
        image_token_id=int(config.image_token_index),
        n_image_tokens=image_token_count(config),
        image_folder=Path(recipe.image_folder) if recipe.image_folder else None,
        pad_to_square=recipe.image_aspect_ratio == "pad",
    )
    return LlavaDataset(load_records(recipe.data_path), parts.tokenizer, parts.image_processor, settings, skip_log)


def _fields_of(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def training_arguments(recipe: Recipe, processes: int) -> TrainingArguments:
    """HF TrainingArguments for the recipe (names that moved between transformers releases handled)."""
    names = _fields_of(TrainingArguments)
    kwargs: dict[str, Any] = {
        "output_dir": recipe.output_dir,
        "per_device_train_batch_size": recipe.per_device_batch_size,
        "gradient_accumulation_steps": recipe.gradient_accumulation(processes),
        "learning_rate": recipe.learning_rate,
        "weight_decay": recipe.weight_decay,
        "lr_scheduler_type": recipe.lr_scheduler,
        "num_train_epochs": recipe.epochs,
        "max_steps": recipe.max_steps,
        "max_grad_norm": recipe.max_grad_norm,
        "bf16": recipe.precision == "bf16",
        "fp16": recipe.precision == "fp16",
        "save_strategy": "steps",
        "save_steps": recipe.save_steps,
        "save_total_limit": recipe.save_total_limit,
        "logging_steps": recipe.logging_steps,
        "report_to": [] if recipe.report_to == "none" else [recipe.report_to],
        "seed": recipe.seed,
        "dataloader_num_workers": recipe.num_workers,
        "remove_unused_columns": False,
        "deepspeed": str(recipe.deepspeed_config) if recipe.deepspeed_config else None,
        "disable_tqdm": True,
        "use_cpu": not torch.cuda.is_available(),
    }
    if "warmup_ratio" in names:
        kwargs["warmup_ratio"] = recipe.warmup_ratio
    else:
        kwargs["warmup_steps"] = recipe.warmup_ratio  # a float below 1 is a ratio
    checkpointing = "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"
    kwargs[checkpointing] = recipe.gradient_checkpointing
    kwargs[f"{checkpointing}_kwargs"] = {"use_reentrant": False}
    return TrainingArguments(**kwargs)


class LlavaTrainer(Trainer):
    """HF Trainer with LLaVA's sampler, per-part learning rates, the blank-image pass and Llava checkpoints."""

    def __init__(self, *args: Any, recipe: Recipe, parts: ModelParts, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.recipe = recipe
        self.parts = parts

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if not self.recipe.group_by_modality_length:
            return super()._get_train_sampler(dataset)
        return ModalityLengthSampler(
            dataset.modality_lengths, self.args.per_device_train_batch_size, self.args.world_size, self.args.seed
        )

    def create_optimizer(self, model: Any = None) -> Any:
        """AdamW groups: connector and vision tower at their own learning rates, no decay on biases and norms."""
        if self.optimizer is not None:
            return self.optimizer
        opt_model = self.model if model is None else model
        decay = set(self.get_decay_parameter_names(opt_model))
        groups: dict[tuple[float, float], list[torch.nn.Parameter]] = {}
        for name, param in opt_model.named_parameters():
            if not param.requires_grad:
                continue
            lr = self.args.learning_rate
            if "multi_modal_projector" in name and self.recipe.connector_lr is not None:
                lr = self.recipe.connector_lr
            elif "vision_tower" in name and self.recipe.vision_lr is not None:
                lr = self.recipe.vision_lr
            wd = self.args.weight_decay if name in decay else 0.0
            groups.setdefault((lr, wd), []).append(param)
        param_groups = [{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()]
        optimizer_cls, optimizer_kwargs = Trainer.get_optimizer_cls_and_kwargs(self.args, opt_model)
        self.optimizer = optimizer_cls(param_groups, **optimizer_kwargs)
        return self.optimizer

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, **kwargs: Any) -> Any:
        result = super().compute_loss(model, inputs, return_outputs=return_outputs, **kwargs)
        if "pixel_values" in inputs:
            return result
        loss, outputs = result if return_outputs else (result, None)
        loss = loss + 0.0 * self._blank_image_features(model).sum()
        return (loss, outputs) if return_outputs else loss

    def _blank_image_features(self, model: Any) -> torch.Tensor:
        """Tower + connector on one blank image, so a batch without images runs the same modules as the others."""
        llava = llava_of(self.accelerator.unwrap_model(model))
        vision = llava.config.vision_config
        param = next(llava_parts(llava).projector.parameters())
        blank = torch.zeros(1, 3, vision.image_size, vision.image_size, device=param.device, dtype=param.dtype)
        features = llava.model.get_image_features(
            pixel_values=blank,
            vision_feature_layer=llava.config.vision_feature_layer,
            vision_feature_select_strategy=llava.config.vision_feature_select_strategy,
        )
        features = getattr(features, "pooler_output", features)
        return torch.cat([f.reshape(-1) for f in features]) if isinstance(features, list | tuple) else features

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        if not self.args.should_save:
            return
        model = self.accelerator.unwrap_model(self.model)
        recipe = self.recipe
        connector_only = recipe.tune_llm == "frozen" and recipe.tune_vision == "frozen"
        llm_type = getattr(llava_of(model).config.text_config, "model_type", None)
        save_checkpoint(
            model,
            self.parts.tokenizer,
            self.parts.image_processor,
            output_dir or self.args.output_dir,
            conv_mode=recipe.saved_conv_mode(llm_type),
            image_aspect_ratio=recipe.image_aspect_ratio,
            training={"stage": recipe.stage, "step": self.state.global_step, "epoch": self.state.epoch},
            connector_only=connector_only,
            state_dict=state_dict,
            recipe=describe(recipe),
        )

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        """Our checkpoints' weights (checkpoint names; LoRA adapters in a subfolder) back into the model."""
        target = model if model is not None else self.model
        if hasattr(target, "peft_config"):
            load_lora_parts(target, Path(resume_from_checkpoint) / LORA_DIR)
        else:
            load_saved_weights(target, Path(resume_from_checkpoint))


def ensure_process_group_env() -> None:
    """A plain ``python -m training`` run with DeepSpeed: a one-process group on this machine."""
    if "RANK" in os.environ or "OMPI_COMM_WORLD_SIZE" in os.environ:
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.update(
        {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0"}
    )


def resume_point(recipe: Recipe) -> str | None:
    if recipe.resume != "auto":
        return recipe.resume
    folder = Path(recipe.output_dir)
    return get_last_checkpoint(str(folder)) if folder.is_dir() else None


class LossRecorder(TrainerCallback):
    """(step, loss) pairs as the Trainer logs them."""

    def __init__(self) -> None:
        self.losses: list[tuple[int, float]] = []

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        if logs and "loss" in logs:
            self.losses.append((state.global_step, float(logs["loss"])))


def make_trainer(
    recipe: Recipe, parts: ModelParts | None = None, callbacks: Sequence[TrainerCallback] = ()
) -> tuple[LlavaTrainer, SkipLog, LossRecorder]:
    """The model, data and Trainer of a recipe (seeded, so a run is reproducible)."""
    from transformers import set_seed

    if recipe.deepspeed is not None:
        ensure_process_group_env()
    check_device(recipe)
    args = training_arguments(recipe, world_size())
    set_seed(recipe.seed)
    parts = prepare_model(parts, recipe) if parts is not None else build_model(recipe)
    out = Path(recipe.output_dir)
    rank = int(os.environ.get("RANK", "0"))
    skip_log = SkipLog(out / (SKIP_LOG if world_size() == 1 else f"skipped_samples.rank{rank}.jsonl"))
    if skip_log.path is not None and skip_log.path.exists():
        skip_log.path.unlink()
    dataset = build_dataset(recipe, parts, skip_log)
    recorder = LossRecorder()
    trainer = LlavaTrainer(
        model=parts.model,
        args=args,
        train_dataset=dataset,
        data_collator=LlavaCollator(pad_id=int(parts.tokenizer.pad_token_id)),
        callbacks=[recorder, *callbacks],
        recipe=recipe,
        parts=parts,
    )
    return trainer, skip_log, recorder


def train(
    recipe: Recipe,
    parts: ModelParts | None = None,
    callbacks: Sequence[TrainerCallback] = (),
) -> Outcome:
    """Run the recipe end to end; the final model is saved in ``recipe.output_dir``."""
    start = time.perf_counter()
    evaluators = list(callbacks)
    if recipe.eval_tasks:
        from training.callbacks import HarnessEvalCallback

        evaluators.append(HarnessEvalCallback.from_recipe(recipe))
    trainer, skip_log, recorder = make_trainer(recipe, parts, evaluators)
    trainer.train(resume_from_checkpoint=resume_point(recipe))
    out = Path(recipe.output_dir)
    trainer.save_model(str(out))
    for callback in evaluators:
        if hasattr(callback, "evaluate_final"):
            callback.evaluate_final(out, trainer.state)
    summary = skip_log.summary()
    print(summary)
    return Outcome(out, trainer.state.global_step, recorder.losses, summary, time.perf_counter() - start)
