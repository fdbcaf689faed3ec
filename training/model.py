"""Assembling a TinyLLaVA as transformers' ``LlavaForConditionalGeneration``, and choosing what trains.

An LLM (Phi, StableLM, Llama/TinyLlama, Qwen2, Gemma) and a vision tower (CLIP or SigLIP), each from a
pretrained directory / hub id or from a config alone (random init), are joined by a fresh ``mlp2x_gelu``
connector. ``<image>`` becomes a tokenizer token and the config's ``image_token_index``. A checkpoint of an
earlier stage (an HF Llava directory) can be loaded instead, and a stage-1 ``mm_projector.bin`` applied.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from model_adapters.formats.runtime import converted_from_original, llava_parts, scale_image_features_as_transformers_4
from training.conversation import IMAGE_PLACEHOLDER

WEIGHT_FILES = (
    "model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json"
)
VISION_TYPES = {"clip": "clip", "clip_vision_model": "clip", "siglip": "siglip", "siglip_vision_model": "siglip"}
LLM_TYPES = ("phi", "stablelm", "llama", "qwen2", "gemma")
TEMPLATE_FOR_LLM = {"phi": "phi", "stablelm": "phi", "llama": "v1", "qwen2": "qwen2", "gemma": "gemma"}


def choose_attention(requested: str) -> str:
    """``auto``: flash_attention_2 when flash-attn is installed and a GPU is present, otherwise sdpa."""
    if requested != "auto":
        return requested
    if torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def is_config_only(source: str) -> bool:
    """A ``config.json`` file, or a local directory without weight files: build from the config (random init)."""
    path = Path(source).expanduser()
    if path.is_file():
        return True
    return path.is_dir() and not any((path / name).is_file() for name in WEIGHT_FILES)


def _config_dir(source: str) -> str:
    path = Path(source).expanduser()
    return str(path.parent if path.is_file() else path)


def load_tokenizer(source: str) -> Any:
    """The LLM's tokenizer (a directory or hub id; a config file's directory)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(_config_dir(source))


def load_language_model(source: str, dtype: torch.dtype, attn: str, quantization: Any = None) -> Any:
    """A causal LM: pretrained weights, or random init from a config file / weight-less directory."""
    from transformers import AutoConfig, AutoModelForCausalLM

    if is_config_only(source):
        path = Path(source).expanduser()
        config = AutoConfig.from_pretrained(str(path.parent if path.is_file() else path))
        model = AutoModelForCausalLM.from_config(config, attn_implementation=attn, dtype=dtype)
    else:
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=dtype, attn_implementation=attn, quantization_config=quantization
        )
    if model.config.model_type not in LLM_TYPES:
        print(f"note: LLM type {model.config.model_type!r} is not one of the TinyLLaVA families {LLM_TYPES}")
    return model


def _vision_kind(config: Any) -> str:
    kind = VISION_TYPES.get(config.model_type)
    if kind is None:
        raise ValueError(f"vision tower type {config.model_type!r} is not supported; use CLIP or SigLIP")
    return kind


def pil_image_processor(kind: str, image_size: int) -> Any:
    """The published image processing of a CLIP (shortest edge + centre crop) or SigLIP (square resize) tower."""
    import transformers

    name = "SiglipImageProcessor" if kind == "siglip" else "CLIPImageProcessor"
    cls = getattr(transformers, name + "Pil", None) or getattr(transformers, name)  # "Pil" from transformers 5 on
    if kind == "siglip":
        return cls(size={"height": image_size, "width": image_size})
    return cls(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size})


def load_image_processor(source: str, kind: str, image_size: int) -> Any:
    """The tower's own image processor when it has one (PIL-backed class), else the published settings."""
    import transformers

    folder = Path(_config_dir(source))
    if (folder / "preprocessor_config.json").is_file():
        processor = transformers.AutoImageProcessor.from_pretrained(str(folder))
        pil = getattr(transformers, type(processor).__name__.removesuffix("Fast") + "Pil", None)
        return pil.from_dict(processor.to_dict()) if pil is not None else processor
    if not folder.is_dir():  # a hub id
        try:
            return transformers.AutoImageProcessor.from_pretrained(source)
        except OSError:
            pass
    return pil_image_processor(kind, image_size)


def load_vision_tower(source: str, dtype: torch.dtype, attn: str) -> tuple[Any, Any]:
    """(vision model, image processor) for a CLIP or SigLIP tower (a full CLIP/SigLIP checkpoint works too)."""
    from transformers import AutoConfig, CLIPVisionConfig, CLIPVisionModel, SiglipVisionConfig, SiglipVisionModel

    config = AutoConfig.from_pretrained(_config_dir(source))
    kind = _vision_kind(config)
    model_cls, config_cls = (SiglipVisionModel, SiglipVisionConfig) if kind == "siglip" else (
        CLIPVisionModel, CLIPVisionConfig)
    if is_config_only(source):
        vision_config = getattr(config, "vision_config", config)
        if not isinstance(vision_config, config_cls):
            vision_config = config_cls.from_dict(vision_config.to_dict())
        tower = model_cls._from_config(vision_config, attn_implementation=attn, dtype=dtype)
    else:
        tower = model_cls.from_pretrained(source, dtype=dtype, attn_implementation=attn)
    return tower, load_image_processor(source, kind, int(tower.config.image_size))


def add_image_token(tokenizer: Any) -> int:
    """Make ``<image>`` a special token of ``tokenizer`` (when it is not one already); its id."""
    if IMAGE_PLACEHOLDER not in tokenizer.get_vocab():
        tokenizer.add_special_tokens({"additional_special_tokens": [IMAGE_PLACEHOLDER]})
    return int(tokenizer.convert_tokens_to_ids(IMAGE_PLACEHOLDER))


def ensure_pad_token(tokenizer: Any) -> int:
    """The pad id: the tokenizer's, else UNK (as TinyLLaVABench), else EOS (masks come from lengths)."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.unk_token if tokenizer.unk_token is not None else tokenizer.eos_token
    return int(tokenizer.pad_token_id)


def image_token_count(config: Any) -> int:
    """Image features per image, as ``LlavaProcessor`` counts them (CLS kept by ``full``, dropped by ``default``)."""
    vision = config.vision_config
    patches = (int(vision.image_size) // int(vision.patch_size)) ** 2
    has_cls = _vision_kind(vision) == "clip"
    return patches + (1 if has_cls else 0) - (1 if config.vision_feature_select_strategy == "default" else 0)


def assemble(
    llm: Any,
    tower: Any,
    tokenizer: Any,
    vision_feature_layer: int = -2,
    vision_feature_select_strategy: str = "full",
) -> Any:
    """A Llava model made of ``llm``'s text model and head, ``tower`` and a fresh mlp2x_gelu connector.

    The parts are moved in, not copied; ``<image>`` is added to ``tokenizer`` and the embeddings resized.
    Both module layouts of transformers' Llava are handled: ``model.{language_model,vision_tower,
    multi_modal_projector}`` + ``lm_head`` (4.52 on) and the causal LM itself as ``language_model`` (before).
    """
    from transformers import LlavaConfig, LlavaForConditionalGeneration
    from transformers.models.llava.modeling_llava import LlavaMultiModalProjector

    image_token_id = add_image_token(tokenizer)
    ensure_pad_token(tokenizer)
    config = LlavaConfig(
        text_config=llm.config,
        vision_config=tower.config,
        image_token_index=image_token_id,
        vision_feature_layer=vision_feature_layer,
        vision_feature_select_strategy=vision_feature_select_strategy,
        projector_hidden_act="gelu",
        image_seq_length=1,
    )
    with torch.device("meta"):
        model = LlavaForConditionalGeneration(config)
    model.config.image_seq_length = image_token_count(config)
    dtype = next(llm.parameters()).dtype
    if not dtype.is_floating_point:  # a quantized LLM: the connector follows the tower
        dtype = next(tower.parameters()).dtype
    projector = LlavaMultiModalProjector(config).to(dtype)
    inner = getattr(model, "model", None)
    if inner is not None and hasattr(inner, "language_model"):  # transformers >= 4.52
        inner.language_model = llm.get_decoder()
        model.lm_head = llm.get_output_embeddings()
        owner = inner
    else:
        model.language_model = llm
        owner = model
    owner.vision_tower = tower
    owner.multi_modal_projector = projector
    model.config.pad_token_id = tokenizer.pad_token_id
    if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
        model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    return model


def load_llava(path: str, dtype: torch.dtype, attn: str) -> tuple[Any, Any, Any]:
    """(model, tokenizer, image processor) of an HF Llava checkpoint (an earlier stage's output)."""
    from transformers import AutoTokenizer, LlavaForConditionalGeneration

    model = LlavaForConditionalGeneration.from_pretrained(path, dtype=dtype, attn_implementation=attn)
    if converted_from_original(model.config.to_dict()):  # as the adapter runs it (a Gemma original's factor)
        scale_image_features_as_transformers_4(model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    ensure_pad_token(tokenizer)
    kind = _vision_kind(model.config.vision_config)
    return model, tokenizer, load_image_processor(path, kind, int(model.config.vision_config.image_size))


def load_projector(model: Any, path: str) -> None:
    """Apply a LLaVA/TinyLLaVABench ``mm_projector.bin`` (``*mm_projector.0/2.*`` keys) to the connector."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    names = {"0": "linear_1", "2": "linear_2"}
    state = {}
    for key, value in saved.items():
        if "mm_projector." in key:
            index, rest = key.split("mm_projector.", 1)[1].split(".", 1)
            state[f"{names[index]}.{rest}"] = value
    llava_parts(model).projector.load_state_dict(state)


def vision_layer_of(name: str) -> int | None:
    """The encoder layer a vision-tower parameter belongs to (None outside the layers)."""
    marker = "encoder.layers."
    if marker not in name:
        return None
    return int(name.split(marker, 1)[1].split(".", 1)[0])


def set_trainable(model: Any, llm: str, vision: str, connector: str, vision_from_layer: int = 0) -> None:
    """Freeze and unfreeze the parts: ``llm`` full|frozen|lora, ``vision`` full|frozen|partial (encoder layers
    from ``vision_from_layer`` on, as TinyLLaVA Factory), ``connector`` full|frozen. LoRA layers come later."""
    parts = llava_parts(model)
    parts.text.requires_grad_(llm == "full")
    parts.head.requires_grad_(llm == "full")
    parts.projector.requires_grad_(connector == "full")
    parts.vision.requires_grad_(vision == "full")
    if vision == "partial":
        for name, param in parts.vision.named_parameters():
            layer = vision_layer_of(name)
            param.requires_grad_(layer is not None and layer >= vision_from_layer)


def module_name(model: Any, module: torch.nn.Module) -> str:
    """The dotted name of ``module`` inside ``model``."""
    for name, candidate in model.named_modules():
        if candidate is module:
            return name
    raise ValueError(f"{type(module).__name__} is not a submodule of {type(model).__name__}")


def llm_linear_names(model: Any, leaves: Iterable[str] | None = None) -> list[str]:
    """Full dotted names of the language model's Linear layers (as TinyLLaVA Factory targets LoRA), optionally
    only those whose last name part is in ``leaves``; the LM head is never one."""
    wanted = set(leaves) if leaves is not None else None
    text = llava_parts(model).text
    prefix = module_name(model, text)
    names = []
    for name, module in text.named_modules():
        if not isinstance(module, torch.nn.Linear):
            continue
        if wanted is None or name.rsplit(".", 1)[-1] in wanted:
            names.append(f"{prefix}.{name}")
    return names


def add_lora(model: Any, r: int, alpha: int, dropout: float, targets: list[str] | None) -> Any:
    """Wrap ``model`` with LoRA adapters on the LLM's Linear layers (``targets``: leaf names, None = all).

    What was trainable before (the connector, tower layers) stays trainable; PEFT freezes everything else.
    """
    from peft import LoraConfig, get_peft_model

    names = llm_linear_names(model, targets)
    if not names:
        raise ValueError(f"no Linear layer of the language model matches lora_targets {targets}")
    text = {id(p) for p in llava_parts(model).text.parameters()}
    keep = [p for p in model.parameters() if p.requires_grad and id(p) not in text]
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=names, bias="none",
                        task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, config)
    for param in keep:
        param.requires_grad_(True)
    return peft_model


def count_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total
