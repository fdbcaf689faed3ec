"""Training recipes: one flat dataclass, YAML files in ``training/recipes/``, command-line overrides.

Everything here is checked before torch, a model or a GPU is touched: unknown fields, wrong types, bad
choices and impossible batch arithmetic stop with a one-line :class:`RecipeError`.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RECIPES_DIR = Path(__file__).resolve().parent / "recipes"
CONFIGS_DIR = Path(__file__).resolve().parent / "configs"
DEEPSPEED_CONFIGS = {"zero2": CONFIGS_DIR / "zero2.json", "zero3": CONFIGS_DIR / "zero3.json"}

CHOICES: dict[str, tuple[Any, ...]] = {
    "tune_llm": ("full", "frozen", "lora"),
    "tune_vision": ("full", "frozen", "partial"),
    "tune_connector": ("full", "frozen"),
    "vision_feature_select_strategy": ("default", "full"),
    "image_aspect_ratio": ("pad", "square"),
    "precision": ("bf16", "fp16", "fp32"),
    "attn": ("auto", "flash_attention_2", "sdpa", "eager"),
    "lr_scheduler": ("cosine", "linear", "constant_with_warmup"),
    "bits": (4, 8, 16),
    "quant_type": ("nf4", "fp4"),
}
REQUIRED = ("llm", "vision_tower", "data_path", "output_dir")


class RecipeError(ValueError):
    """A recipe that cannot run; the message is one line."""


@dataclass
class Recipe:
    """Every setting of a training run. ``None`` means "not set" (or "the default" where documented)."""

    stage: str = "finetune"  # pretrain | finetune | share | lora | qlora | demo: a label saved with the checkpoint
    # model
    llm: str | None = None  # LLM directory or hub id (weights), or a config.json / weight-less directory (random init)
    vision_tower: str | None = None  # CLIP or SigLIP directory or hub id, or a config (random init)
    init_from: str | None = None  # an HF Llava checkpoint to continue from (replaces llm + vision_tower)
    projector: str | None = None  # a stage-1 mm_projector.bin to load into the connector
    vision_feature_layer: int = -2
    vision_feature_select_strategy: str = "full"  # full: every token (SigLIP); default: CLS dropped (CLIP "patch")
    template: str = "phi"  # phi | v1 | llama | gemma | qwen2 | plain
    conv_mode: str | None = None  # template written to config.json (None: template, or the LLM's for plain)
    image_aspect_ratio: str = "pad"
    # what trains
    tune_llm: str = "full"
    tune_vision: str = "frozen"
    vision_tune_from_layer: int = 0  # tune_vision partial: encoder layers from this one on
    tune_connector: str = "full"
    # LoRA / QLoRA
    lora_r: int = 128
    lora_alpha: int = 256
    lora_dropout: float = 0.05
    lora_targets: list[str] | None = None  # leaf names (q_proj, ...); None: every Linear of the LLM
    bits: int = 16  # 4 / 8: QLoRA (bitsandbytes, CUDA)
    quant_type: str = "nf4"
    double_quant: bool = True
    # data
    data_path: str | None = None
    image_folder: str | None = None
    max_length: int = 3072
    group_by_modality_length: bool = True
    num_workers: int = 4
    # optimisation
    learning_rate: float = 2e-5
    connector_lr: float | None = None  # separate connector learning rate (mm_projector_lr)
    vision_lr: float | None = None  # separate vision-tower learning rate
    weight_decay: float = 0.0
    warmup_ratio: float = 0.03
    lr_scheduler: str = "cosine"
    epochs: float = 1.0
    max_steps: int = -1  # > 0: stop after this many optimizer steps
    global_batch_size: int = 128
    per_device_batch_size: int = 16
    max_grad_norm: float = 1.0
    precision: str = "bf16"
    gradient_checkpointing: bool = True
    deepspeed: str | None = "zero3"  # zero2 | zero3 | a JSON file | None (plain DDP / single process)
    attn: str = "auto"  # auto: flash_attention_2 when installed and on a GPU, else sdpa
    seed: int = 42
    # output
    output_dir: str | None = None
    save_steps: int = 500
    save_total_limit: int | None = 1
    logging_steps: int = 10
    resume: str | None = None  # a checkpoint-N directory, or "auto" for the last one in output_dir
    report_to: str = "none"
    # evaluation callback (harness tasks on each saved checkpoint)
    eval_tasks: str | None = None  # e.g. "gqa,mme"
    eval_limit: int | None = None
    eval_data_root: str | None = None  # None: the demo data root
    eval_output_dir: str | None = None  # None: <output_dir>/eval
    eval_store: str | None = None  # a results store URL (None: sqlite in eval_output_dir)
    eval_batch_size: int = 16

    @property
    def deepspeed_config(self) -> Path | None:
        if self.deepspeed is None:
            return None
        return DEEPSPEED_CONFIGS.get(self.deepspeed, Path(self.deepspeed))

    def gradient_accumulation(self, world_size: int) -> int:
        """Steps per optimizer update so that per-device batch x world size x steps = global batch."""
        per_step = self.per_device_batch_size * world_size
        if self.global_batch_size % per_step:
            raise RecipeError(
                f"global_batch_size {self.global_batch_size} is not a multiple of per_device_batch_size "
                f"{self.per_device_batch_size} x {world_size} process(es)"
            )
        return self.global_batch_size // per_step

    def saved_conv_mode(self, llm_type: str | None = None) -> str:
        """The chat template the checkpoint declares (``conv_mode`` in config.json)."""
        if self.conv_mode:
            return self.conv_mode
        if self.template != "plain":
            return self.template
        from training.model import TEMPLATE_FOR_LLM

        return TEMPLATE_FOR_LLM.get(llm_type or "", "v1")


FIELDS: dict[str, dataclasses.Field] = {f.name: f for f in dataclasses.fields(Recipe)}
TYPES: dict[str, Any] = typing.get_type_hints(Recipe)


def _type_name(tp: Any) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) is list or (args and typing.get_origin(args[0]) is list):
        return "a list of strings"
    return names.get(args[0] if args else tp, str(tp))


def _parse_text(text: str) -> Any:
    """A command-line value as YAML (numbers, true/false, null, [a, b]); plain text when that fails."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def coerce(name: str, value: Any) -> Any:
    """``value`` as the type of field ``name``; RecipeError naming the field otherwise."""
    if name not in FIELDS:
        valid = ", ".join(FIELDS)
        raise RecipeError(f"unknown recipe field '{name}'; valid fields: {valid}")
    tp = TYPES[name]
    optional = isinstance(tp, types.UnionType) and type(None) in typing.get_args(tp)
    base = next((a for a in typing.get_args(tp) if a is not type(None)), tp) if optional else tp
    if value is None or (isinstance(value, str) and value.lower() in ("null", "none") and optional):
        if optional:
            return None
        raise RecipeError(f"recipe field {name} cannot be null; expected {_type_name(tp)}")
    try:
        return _as(base, value)
    except (TypeError, ValueError):
        raise RecipeError(f"recipe field {name}: expected {_type_name(tp)}, got {value!r}") from None


def _as(base: Any, value: Any) -> Any:
    if typing.get_origin(base) is list:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
            raise TypeError
        return [str(v) for v in value]
    if base is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise TypeError
    if base is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise TypeError
        return int(value) if not isinstance(value, str) else int(value, 10)
    if base is float:
        if isinstance(value, bool):
            raise TypeError
        return float(value)
    if base is str:
        if isinstance(value, bool | list | dict):
            raise TypeError
        return str(value)
    raise TypeError


def parse_overrides(args: Sequence[str]) -> dict[str, Any]:
    """``--set key=value``, ``--key value`` and ``--key=value`` pairs, parsed and type-checked."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--"):
            raise RecipeError(f"unexpected argument '{arg}'; overrides are --set key=value or --key value")
        if arg == "--set":
            if i + 1 >= len(args) or "=" not in args[i + 1]:
                raise RecipeError("--set needs key=value")
            key, text = args[i + 1].split("=", 1)
            i += 2
        elif "=" in arg:
            key, text = arg[2:].split("=", 1)
            i += 1
        else:
            if i + 1 >= len(args) or args[i + 1].startswith("--"):
                raise RecipeError(f"{arg} needs a value")
            key, text = arg[2:], args[i + 1]
            i += 2
        key = key.replace("-", "_")
        out[key] = coerce(key, _parse_text(text))
    return out


def recipe_path(name_or_path: str) -> Path:
    """A recipe file: a path, or a name in training/recipes (``finetune`` -> recipes/finetune.yaml)."""
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    candidate = RECIPES_DIR / f"{name_or_path}.yaml"
    if candidate.is_file():
        return candidate
    names = ", ".join(sorted(p.stem for p in RECIPES_DIR.glob("*.yaml")))
    raise RecipeError(f"recipe '{name_or_path}' not found (a YAML file, or one of: {names})")


def read_recipe_file(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RecipeError(f"{path}: not valid YAML ({first})") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe is a mapping of field: value")
    out = {}
    for key, value in data.items():
        try:
            out[str(key)] = coerce(str(key), value)
        except RecipeError as exc:
            raise RecipeError(f"{path}: {exc}") from None
    return out


def load_recipe(name_or_path: str, overrides: Mapping[str, Any] | Sequence[str] = ()) -> Recipe:
    """The recipe file with overrides applied (already parsed ones, or command-line words), validated."""
    values = read_recipe_file(recipe_path(name_or_path))
    if isinstance(overrides, Mapping):
        values.update({k: coerce(k, v) for k, v in overrides.items()})
    else:
        values.update(parse_overrides(list(overrides)))
    recipe = Recipe(**values)
    validate(recipe)
    return recipe


def world_size() -> int:
    """Processes in this run (set by torchrun / deepspeed / accelerate launchers)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def validate(recipe: Recipe, processes: int | None = None) -> None:
    """Choices, required fields, files that must exist and batch arithmetic; RecipeError on the first problem."""
    from training.conversation import template_names

    for name, choices in CHOICES.items():
        if getattr(recipe, name) not in choices:
            shown = ", ".join(str(c) for c in choices)
            raise RecipeError(f"recipe field {name}: {getattr(recipe, name)!r} is not one of {shown}")
    if recipe.template not in template_names():
        raise RecipeError(f"recipe field template: {recipe.template!r} is not one of {', '.join(template_names())}")
    if recipe.conv_mode is not None and recipe.conv_mode not in template_names()[:-1]:
        raise RecipeError(f"recipe field conv_mode: {recipe.conv_mode!r} is not a chat template")
    missing = [name for name in REQUIRED if not getattr(recipe, name)]
    if recipe.init_from:
        missing = [m for m in missing if m not in ("llm", "vision_tower")]
    if missing:
        raise RecipeError(f"recipe field {missing[0]} is required (set it with --{missing[0]} VALUE)")
    for name in ("data_path", "image_folder", "init_from", "projector"):
        value = getattr(recipe, name)
        if value and not Path(value).expanduser().exists():
            raise RecipeError(f"recipe field {name}: {value} does not exist")
    if recipe.deepspeed is not None and not recipe.deepspeed_config.is_file():
        raise RecipeError(f"recipe field deepspeed: {recipe.deepspeed} is neither zero2, zero3 nor a JSON file")
    positive = ("max_length", "global_batch_size", "per_device_batch_size", "save_steps", "logging_steps", "lora_r")
    for name in positive:
        if getattr(recipe, name) <= 0:
            raise RecipeError(f"recipe field {name} must be positive, got {getattr(recipe, name)}")
    if recipe.learning_rate <= 0 or not 0 <= recipe.warmup_ratio < 1:
        raise RecipeError("recipe fields learning_rate > 0 and 0 <= warmup_ratio < 1 are required")
    if recipe.bits != 16 and recipe.tune_llm != "lora":
        raise RecipeError(f"recipe field bits {recipe.bits} (QLoRA) needs tune_llm lora")
    if recipe.bits != 16 and recipe.deepspeed == "zero3":
        raise RecipeError("QLoRA (bits 4/8) does not work with ZeRO-3; use deepspeed zero2")
    if recipe.tune_vision == "partial" and recipe.vision_tune_from_layer < 0:
        raise RecipeError("recipe field vision_tune_from_layer must be >= 0")
    if recipe.resume not in (None, "auto") and not Path(recipe.resume).is_dir():
        raise RecipeError(f"recipe field resume: {recipe.resume} is not a checkpoint directory (or 'auto')")
    if recipe.eval_tasks is not None and not recipe.eval_tasks.strip():
        raise RecipeError("recipe field eval_tasks is empty")
    recipe.gradient_accumulation(processes or world_size())


def describe(recipe: Recipe) -> dict[str, Any]:
    """The recipe as a plain dict (saved with checkpoints)."""
    return dataclasses.asdict(recipe)


def field_help() -> str:
    """One line per field with its type and default, for ``--help``."""
    rows = []
    for name, f in FIELDS.items():
        default = f.default if f.default is not dataclasses.MISSING else None
        rows.append(f"  {name} ({_type_name(TYPES[name])}, default {default!r})")
    return "\n".join(rows)


__all__ = ["Recipe", "RecipeError", "load_recipe", "parse_overrides", "validate"]
