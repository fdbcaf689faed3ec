"""Tiny look-alikes of every TinyLLaVA checkpoint format, and a reference forward for each.

Each ``make_*`` writes a checkpoint directory with the original's config fields and state-dict keys at toy
sizes (random weights, every bias non-zero, Factory Phi with a trained ``lm_head.bias``) and returns a
:class:`Lookalike` holding the *original* model pieces in memory. :func:`reference_logits` and
:func:`reference_greedy` compute what the original code does, written from its description: prompt ids
with -200 where ``<image>`` was (``tokenizer_image_token``), the format's feature layer and token selection,
the mlp2x_gelu projector, features spliced at the -200 positions, the native language model.
"""

from __future__ import annotations

import copy
import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from transformers import (
    AutoModelForCausalLM,
    CLIPVisionConfig,
    CLIPVisionModel,
    GemmaConfig,
    LlamaConfig,
    PhiConfig,
    PreTrainedTokenizerFast,
    Qwen2Config,
    SiglipVisionConfig,
    SiglipVisionModel,
    StableLmConfig,
)

from model_adapters.demo_model import demo_corpus
from tests.helpers.tiny_checkpoints import UNREADABLE_SCALE, readable_token_ids

IMAGE_TOKEN_INDEX = -200
IMAGE_SIZE, PATCH = 32, 8
VISION_HIDDEN, TEXT_HIDDEN = 32, 64
HEAD_SCALE = 4.0
SPARE_ROWS = 13  # embedding rows past the tokenizer (phi-2: 51200 rows, 50295 tokens)

TOKENIZER_STYLES: dict[str, dict[str, Any]] = {
    "phi": {"specials": ["<|endoftext|>"], "bos": None, "eos": "<|endoftext|>", "pad": "<|endoftext|>"},
    "llama": {"specials": ["<unk>", "<s>", "</s>"], "bos": "<s>", "eos": "</s>", "pad": "<unk>", "unk": "<unk>"},
    "qwen2": {"specials": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], "bos": None, "eos": "<|endoftext|>",
              "pad": "<|endoftext|>"},
    "gemma": {"specials": ["<pad>", "<eos>", "<bos>", "<unk>"], "bos": "<bos>", "eos": "<eos>", "pad": "<pad>",
              "unk": "<unk>"},
}


def make_tokenizer(style: str, vocab_size: int = 320) -> Any:
    """A byte-level BPE tokenizer with the special tokens of a language-model family (no ``<image>``)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    spec = TOKENIZER_STYLES[style]
    tok = Tokenizer(models.BPE(unk_token=spec.get("unk")))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=spec["specials"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(demo_corpus(), trainer)
    if spec["bos"]:
        bos_id = tok.token_to_id(spec["bos"])
        tok.post_processor = processors.TemplateProcessing(
            single=f"{spec['bos']} $A",
            pair=f"{spec['bos']} $A {spec['bos']} $B",
            special_tokens=[(spec["bos"], bos_id)],
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=spec["bos"],
        eos_token=spec["eos"],
        pad_token=spec["pad"],
        unk_token=spec.get("unk"),
    )


# ---------------------------------------------------------------------------------------------
# Model pieces (random, non-zero biases, wide logit gaps)


def roughen(module: torch.nn.Module, seed: int) -> None:
    """Make every parameter random and non-zero (HF initialises biases to 0 and norms to 1)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, param in sorted(module.named_parameters()):
            param.add_(0.05 * torch.randn(param.shape, generator=generator))


def text_fields(family: str, vocab: int, tokenizer: Any, tied: bool = False) -> dict[str, Any]:
    """The language-model config fields as the original checkpoints spell them."""
    ids = {"bos_token_id": tokenizer.bos_token_id or tokenizer.eos_token_id, "eos_token_id": tokenizer.eos_token_id,
           "pad_token_id": tokenizer.pad_token_id}
    common = {"vocab_size": vocab, "hidden_size": TEXT_HIDDEN, "intermediate_size": 128, "num_hidden_layers": 2,
              "num_attention_heads": 4, "max_position_embeddings": 1024, "tie_word_embeddings": tied, **ids}
    if family == "phi":
        return {**common, "model_type": "phi", "hidden_act": "gelu_new", "partial_rotary_factor": 0.4,
                "layer_norm_eps": 1e-5, "rope_theta": 10000.0, "qk_layernorm": False, "resid_pdrop": 0.1,
                "embd_pdrop": 0.0, "num_key_value_heads": 4}
    if family == "llama":
        return {**common, "model_type": "llama", "num_key_value_heads": 2, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
                "hidden_act": "silu", "attention_bias": False, "pretraining_tp": 1}
    if family == "stablelm_epoch":  # the remote-code field names of the legacy 2.0B
        return {**common, "model_type": "stablelm_epoch", "num_key_value_heads": 4, "rope_pct": 0.25,
                "norm_eps": 1e-5, "use_qkv_bias": True, "hidden_act": "silu", "rope_theta": 10000}
    if family == "qwen2":
        return {**common, "model_type": "qwen2", "num_key_value_heads": 2, "rms_norm_eps": 1e-6,
                "rope_theta": 1000000.0, "hidden_act": "silu"}
    if family == "gemma":
        return {**common, "model_type": "gemma", "num_key_value_heads": 1, "head_dim": 16, "rms_norm_eps": 1e-6,
                "hidden_act": "gelu_pytorch_tanh", "hidden_activation": "gelu_pytorch_tanh"}
    raise ValueError(family)


def native_text_config(fields: dict[str, Any]) -> Any:
    data = {k: v for k, v in fields.items() if k != "model_type"}
    family = fields["model_type"]
    if family == "stablelm_epoch":
        data["partial_rotary_factor"] = data.pop("rope_pct")
        data["layer_norm_eps"] = data.pop("norm_eps")
        return StableLmConfig(**data)
    return {"phi": PhiConfig, "llama": LlamaConfig, "qwen2": Qwen2Config, "gemma": GemmaConfig}[family](**data)


def make_language_model(fields: dict[str, Any], seed: int, head_bias: bool, tokenizer: Any) -> Any:
    """A random native LM whose greedy answers are printable text with wide logit gaps."""
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(native_text_config(fields)).eval()
    roughen(model, seed)
    readable = torch.zeros(fields["vocab_size"], dtype=torch.bool)
    readable[readable_token_ids(tokenizer)] = True
    with torch.no_grad():
        head = model.get_output_embeddings()
        head.weight.mul_(HEAD_SCALE)
        if not fields.get("tie_word_embeddings"):
            head.weight[~readable] *= UNREADABLE_SCALE
        if head.bias is not None:
            if head_bias:
                head.bias.copy_(2.0 * torch.randn(head.bias.shape, generator=torch.Generator().manual_seed(seed + 1)))
            else:
                head.bias.zero_()  # the legacy TinyLLaVA Phi head has no bias
    return model


def tower_fields(kind: str, with_head: bool = False) -> dict[str, Any]:
    common = {"hidden_size": VISION_HIDDEN, "intermediate_size": 64, "num_hidden_layers": 3, "num_attention_heads": 4,
              "image_size": IMAGE_SIZE, "patch_size": PATCH, "num_channels": 3}
    if kind == "siglip":
        return {**common, "model_type": "siglip_vision_model", "hidden_act": "gelu_pytorch_tanh",
                "layer_norm_eps": 1e-6, "vision_use_head": with_head}
    return {**common, "model_type": "clip_vision_model", "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5,
            "projection_dim": 16}


def make_tower(kind: str, seed: int, with_head: bool = False) -> Any:
    fields = {k: v for k, v in tower_fields(kind, with_head).items() if k != "model_type"}
    torch.manual_seed(seed)
    tower = (SiglipVisionModel(SiglipVisionConfig(**fields)) if kind == "siglip"
             else CLIPVisionModel(CLIPVisionConfig(**fields))).eval()
    roughen(tower, seed)
    return tower


def make_projector(seed: int) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    projector = torch.nn.Sequential(
        torch.nn.Linear(VISION_HIDDEN, TEXT_HIDDEN), torch.nn.GELU(), torch.nn.Linear(TEXT_HIDDEN, TEXT_HIDDEN)
    ).eval()
    roughen(projector, seed)
    return projector


def tower_state(tower: Any, keep_layers: int | None = None) -> dict[str, torch.Tensor]:
    """The tower's weights named as the original (transformers 4.37) SigLIP/CLIP models name them."""
    state = {}
    for key, value in tower.state_dict().items():
        key = key if key.startswith("vision_model.") else f"vision_model.{key}"
        parts = key.split(".")
        if keep_layers is not None and parts[1:3] == ["encoder", "layers"] and int(parts[3]) >= keep_layers:
            continue
        state[key] = value.clone()
    return state


def write_tensors(path: Path, tensors: dict[str, torch.Tensor], shards: int = 1) -> None:
    """model.safetensors, or ``shards`` files with an index (as save_pretrained writes them)."""
    tensors = {k: v.contiguous().clone() for k, v in tensors.items()}
    if shards == 1:
        save_file(tensors, path / "model.safetensors", metadata={"format": "pt"})
        return
    keys = sorted(tensors)
    weight_map = {}
    for i in range(shards):
        name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        chunk = {k: tensors[k] for k in keys[i::shards]}
        save_file(chunk, path / name, metadata={"format": "pt"})
        weight_map.update({k: name for k in chunk})
    index = {"metadata": {"total_size": sum(v.numel() * v.element_size() for v in tensors.values())},
             "weight_map": weight_map}
    (path / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_tower_dir(path: Path, kind: str, tower: Any) -> Path:
    """A tower repository: config.json and the full tower's weights (``vision_model.*``)."""
    path.mkdir(parents=True, exist_ok=True)
    write_json(path / "config.json", {**tower_fields(kind), "architectures": [type(tower).__name__]})
    write_tensors(path, tower_state(tower))
    return path


# ---------------------------------------------------------------------------------------------
# The original models in memory


@dataclass
class Lookalike:
    """A fabricated checkpoint and the original model it stands for."""

    path: Path
    layout: str  # "legacy" or "factory"
    tower_kind: str
    language_model: Any  # native causal LM, with the original's head bias (zero for legacy Phi)
    tower: Any  # the full native vision model
    projector: torch.nn.Sequential
    tokenizer: Any
    live_vocab: int  # output rows the original model has
    config: dict[str, Any] = field(default_factory=dict)
    extra_dirs: dict[str, Path] = field(default_factory=dict)

    def image_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """The original's projected image features for pixel rows [n, 3, H, W]."""
        layers = len(_body(self.tower).encoder.layers)
        if self.layout == "legacy" and self.tower_kind == "siglip":
            hidden = encoder_output(self.tower, pixels, layers - 1)  # last layer deleted, hidden_states[-1]
        elif self.layout == "legacy":
            select = self.config.get("mm_vision_select_layer", -2)
            hidden = encoder_output(self.tower, pixels, layers + 1 + select)[:, 1:]  # patch: CLS dropped
        else:  # Factory: hidden_states[-2][:, 1:] even for SigLIP
            hidden = encoder_output(self.tower, pixels, layers + 1 + self.config["vision_feature_layer"])[:, 1:]
        return self.projector(hidden)


def _body(tower: Any) -> Any:
    return getattr(tower, "vision_model", tower)


def encoder_output(tower: Any, pixels: torch.Tensor, n_layers: int) -> torch.Tensor:
    """The encoder's state after its first ``n_layers`` layers (no post-layernorm)."""
    body = copy.deepcopy(_body(tower))
    hidden = body.embeddings(pixels)
    if hasattr(body, "pre_layrnorm"):
        hidden = body.pre_layrnorm(hidden)
    del body.encoder.layers[n_layers:]
    return body.encoder(inputs_embeds=hidden).last_hidden_state


def ids_with_image_marks(prompt: str, tokenizer: Any) -> list[int]:
    """``tokenizer_image_token``: chunks around ``<image>`` tokenised alone, -200 between, BOS kept once."""
    chunks = [tokenizer(chunk).input_ids for chunk in prompt.split("<image>")]
    bos = tokenizer.bos_token_id
    offset = 1 if bos is not None and chunks[0] and chunks[0][0] == bos else 0
    ids = [bos] if offset else []
    for i, chunk in enumerate(chunks):
        if i:
            ids.append(IMAGE_TOKEN_INDEX)
        ids.extend(chunk[offset:])
    return ids


def spliced_embeddings(original: Lookalike, ids: Sequence[int], pixels: torch.Tensor | None) -> torch.Tensor:
    """Text embeddings with each -200 replaced by the next image's features (``[1, L, H]``), as the language model
    of the original's runtime (transformers 4.x) sees them.

    Gemma in transformers 4.x (4.40.1, TinyLLaVA Factory's pin) multiplies its whole ``inputs_embeds`` by
    ``torch.tensor(hidden_size ** 0.5, dtype)`` inside ``GemmaModel.forward``, image features included; transformers
    5 applies that factor in the token embedding instead (``embed_scale``), so under 5 the spliced image features
    are multiplied here, as 4.x would have.
    """
    embed = original.language_model.get_input_embeddings()
    features = original.image_features(pixels) if pixels is not None else None
    if features is not None and getattr(embed, "embed_scale", None) is not None:
        hidden = original.language_model.config.hidden_size
        features = features * torch.tensor(hidden**0.5, dtype=features.dtype)
    pieces, chunk, image = [], [], 0
    for token in [*ids, None]:
        if token is None or token == IMAGE_TOKEN_INDEX:
            if chunk:
                pieces.append(embed(torch.tensor(chunk)))
                chunk = []
            if token is not None:
                assert features is not None
                pieces.append(features[image])
                image += 1
        else:
            chunk.append(token)
    return torch.cat(pieces).unsqueeze(0)


@torch.no_grad()
def reference_logits(original: Lookalike, ids: Sequence[int], pixels: torch.Tensor | None) -> torch.Tensor:
    """The original model's logits over its own vocabulary, ``[L_expanded, live_vocab]``."""
    logits = original.language_model(inputs_embeds=spliced_embeddings(original, ids, pixels)).logits[0]
    return logits[:, : original.live_vocab]


@torch.no_grad()
def reference_greedy(original: Lookalike, ids: Sequence[int], pixels: torch.Tensor | None, n: int) -> list[int]:
    """Greedy decoding without a cache, stopping after EOS."""
    out: list[int] = []
    for _ in range(n):
        token = int(reference_logits(original, list(ids) + out, pixels)[-1].argmax())
        out.append(token)
        if token == original.tokenizer.eos_token_id:
            break
    return out


# ---------------------------------------------------------------------------------------------
# Legacy TinyLLaVABench


LEGACY = {  # family -> (architectures, model_type, tokenizer style, text fields family)
    "phi": ("TinyLlavaPhiForCausalLM", "tiny_llava_phi", "phi", "phi"),
    "llama": ("TinyLlavaLlamaForCausalLM", "tiny_llava", "llama", "llama"),
    "stablelm": ("TinyLlavaStablelmForCausalLM", "tiny_llava_stablelm", "phi", "stablelm_epoch"),
}


def legacy_config(family: str, fields: dict[str, Any], tower_dir: Path, kind: str) -> dict[str, Any]:
    arch, model_type, _, _ = LEGACY[family]
    return {
        **{k: v for k, v in fields.items() if k != "model_type"},
        "architectures": [arch],
        "model_type": model_type,
        "auto_map": {"AutoModelForCausalLM": "microsoft/phi-2--modeling_phi.PhiForCausalLM"},
        "mm_vision_tower": str(tower_dir),
        "mm_hidden_size": VISION_HIDDEN,
        "mm_projector_type": "mlp2x_gelu",
        "mm_vision_select_layer": -2,
        "mm_vision_select_feature": "patch",
        "mm_use_im_start_end": False,
        "mm_use_im_patch_token": False,
        "mm_patch_merge_type": "flat",
        "mm_projector_lr": None,
        "image_aspect_ratio": "pad",
        "tokenizer_model_max_length": 3072,
        "tokenizer_padding_side": "right",
        "freeze_mm_mlp_adapter": False,
        "tune_mm_mlp_adapter": False,
        "tune_vision_tower": False,
        "tune_entire_model": False,
        "tune_embed_tokens": False,
        "use_mm_proj": True,
        "torch_dtype": "float32",
        "transformers_version": "4.37.2",
        "use_cache": True,
    }


def make_legacy(root: Path, family: str = "phi", kind: str = "siglip", seed: int = 0, shards: int = 2,
                tower_in_checkpoint: bool = True) -> Lookalike:
    """A legacy checkpoint: native LM keys under ``model.``, ``model.mm_projector.{0,2}``, the tower under
    ``model.vision_tower.vision_tower.vision_model`` (SigLIP with its last layer deleted), a tower directory."""
    _, _, style, fields_family = LEGACY[family]
    tokenizer = make_tokenizer(style)
    vocab = len(tokenizer) + (0 if family == "llama" else SPARE_ROWS)  # TinyLlama: exactly the tokenizer's 32000
    fields = text_fields(fields_family, vocab, tokenizer)
    language_model = make_language_model(fields, seed, head_bias=False, tokenizer=tokenizer)
    tower = make_tower(kind, seed + 10)
    projector = make_projector(seed + 20)
    tower_dir = write_tower_dir(root / "tower", kind, tower)
    path = root / "checkpoint"
    path.mkdir(parents=True)
    tensors = {k: v for k, v in language_model.state_dict().items() if k != "lm_head.bias"}
    keep = 2 if kind == "siglip" else None
    if tower_in_checkpoint:
        tensors.update({f"model.vision_tower.vision_tower.{k}": v for k, v in tower_state(tower, keep).items()})
    tensors.update({f"model.mm_projector.{k}": v for k, v in projector.state_dict().items()})
    write_tensors(path, tensors, shards)
    config = legacy_config(family, fields, tower_dir, kind)
    write_json(path / "config.json", config)
    tokenizer.save_pretrained(path)
    return Lookalike(path, "legacy", kind, language_model, tower, projector, tokenizer, len(tokenizer), config,
                     {"tower": tower_dir})


# ---------------------------------------------------------------------------------------------
# TinyLLaVA Factory


FACTORY = {  # family -> (tokenizer style, llm_model_name_or_path, tied)
    "phi": ("phi", "microsoft/phi-2", False),
    "qwen2": ("qwen2", "Qwen/Qwen2-0.5B", True),
    "gemma": ("gemma", "google/gemma-2b-it", True),
}


def factory_config(family: str, fields: dict[str, Any], kind: str, tokenizer: Any) -> dict[str, Any]:
    _, llm_name, _ = FACTORY[family]
    tower = tower_fields(kind, with_head=kind == "siglip")
    return {
        "architectures": ["TinyLlavaForConditionalGeneration"],
        "model_type": "tinyllava",
        "auto_map": {"AutoConfig": "configuration.TinyLlavaConfig",
                     "AutoModelForCausalLM": "modeling_tinyllava_phi.TinyLlavaForConditionalGeneration"},
        "connector_type": "mlp2x_gelu",
        "hidden_size": TEXT_HIDDEN,
        "ignore_index": -100,
        "image_token_index": IMAGE_TOKEN_INDEX,
        "image_aspect_ratio": "square",
        "llm_model_name_or_path": llm_name,
        "vision_model_name_or_path": "google/siglip-so400m-patch14-384",
        "tokenizer_name_or_path": llm_name,
        "pad_token": tokenizer.pad_token,
        "pad_token_id": tokenizer.pad_token_id,
        "num_queries": 128,
        "num_resampler_layers": 3,
        "resampler_hidden_size": 768,
        "text_config": {**fields, "architectures": [f"{family.capitalize()}ForCausalLM"]},
        "vision_config": tower,
        "vision_hidden_size": VISION_HIDDEN,
        "vision_feature_layer": -2,
        "vision_feature_select_strategy": "patch",
        "tokenizer_model_max_length": 3072,
        "tokenizer_padding_side": "right",
        "tokenizer_use_fast": False,
        "tune_type_llm": "full",
        "tune_type_connector": "full",
        "tune_type_vision_tower": "frozen",
        "use_cache": False,
        "torch_dtype": "float16",
        "transformers_version": "4.39.3",
    }


def make_factory(root: Path, family: str = "phi", kind: str = "siglip", seed: int = 100,
                 layout: str = "single") -> Lookalike:
    """A Factory checkpoint, single file (``language_model.*``, ``vision_tower._vision_tower.*``,
    ``connector._connector.*``) or stage layout (``language_model/ vision_tower/ connector/``)."""
    style, _, tied = FACTORY[family]
    tokenizer = make_tokenizer(style)
    vocab = len(tokenizer) + (0 if family == "gemma" else SPARE_ROWS)
    fields = text_fields(family, vocab, tokenizer, tied=tied)
    language_model = make_language_model(fields, seed, head_bias=True, tokenizer=tokenizer)
    tower = make_tower(kind, seed + 10, with_head=kind == "siglip")
    projector = make_projector(seed + 20)
    path = root / "checkpoint"
    path.mkdir(parents=True)
    lm_state = dict(language_model.state_dict())
    if tied:
        lm_state.pop("lm_head.weight")
    if layout == "single":
        tensors = {f"language_model.{k}": v for k, v in lm_state.items()}
        tensors.update({f"vision_tower._vision_tower.{k}": v for k, v in tower_state(tower).items()})
        tensors.update({f"connector._connector.{k}": v for k, v in projector.state_dict().items()})
        write_tensors(path, tensors)
    else:
        for name, state in (("language_model", lm_state), ("vision_tower", tower_state(tower)),
                            ("connector", {f"_connector.{k}": v for k, v in projector.state_dict().items()})):
            (path / name).mkdir()
            torch.save({k: v.clone() for k, v in state.items()}, path / name / "pytorch_model.bin")
        write_json(path / "language_model" / "config.json", fields)
        write_json(path / "vision_tower" / "config.json", tower_fields(kind, with_head=kind == "siglip"))
    config = factory_config(family, fields, kind, tokenizer)
    write_json(path / "config.json", config)
    tokenizer.save_pretrained(path)
    return Lookalike(path, "factory", kind, language_model, tower, projector, tokenizer,
                     language_model.get_output_embeddings().out_features, config)


# ---------------------------------------------------------------------------------------------
# Partial checkpoints: projector-only and LoRA


def make_projector_only(root: Path, base: Lookalike, seed: int = 300) -> Lookalike:
    """A pretrain-stage output: the legacy config.json and ``mm_projector.bin`` (new projector weights)."""
    projector = make_projector(seed)
    path = root / "projector-only"
    path.mkdir(parents=True)
    write_json(path / "config.json", base.config)
    torch.save({f"model.mm_projector.{k}": v.clone() for k, v in projector.state_dict().items()},
               path / "mm_projector.bin")
    return Lookalike(path, "legacy", base.tower_kind, base.language_model, base.tower, projector, base.tokenizer,
                     base.live_vocab, base.config, {"base": base.path, **base.extra_dirs})


LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2")
LORA_RANK, LORA_ALPHA = 4, 8


def lora_delta(state: dict[str, torch.Tensor], module: str, adapter_prefix: str) -> torch.Tensor:
    """(alpha / r) * B @ A for one layer, from the saved adapter tensors."""
    a = state[f"{adapter_prefix}{module}.lora_A.weight"]
    b = state[f"{adapter_prefix}{module}.lora_B.weight"]
    return (LORA_ALPHA / LORA_RANK) * (b @ a)


def merged_copy(model: torch.nn.Module, adapter: dict[str, torch.Tensor], prefix: str, names: Sequence[str]) -> Any:
    """``model`` with W + (alpha/r) B A written into each named Linear (the merge, by hand)."""
    merged = copy.deepcopy(model)
    with torch.no_grad():
        for name in names:
            merged.get_submodule(name).weight.add_(lora_delta(adapter, name, prefix))
    return merged


def _train_lora(module: torch.nn.Module, targets: Sequence[str] | str, path: Path, seed: int) -> dict[str, Any]:
    """Wrap ``module`` with random (non-zero) LoRA factors, save the adapter in ``path``, return its tensors."""
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import load_file

    config = LoraConfig(r=LORA_RANK, lora_alpha=LORA_ALPHA, lora_dropout=0.05, target_modules=list(targets),
                        bias="none", task_type="CAUSAL_LM" if isinstance(targets, tuple) else None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # peft calls deprecated transformers helpers
        peft_model = get_peft_model(copy.deepcopy(module), config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name:
                param.copy_(0.3 * torch.randn(param.shape, generator=generator))
    peft_model.save_pretrained(path)
    return load_file(path / "adapter_model.safetensors")


def make_legacy_lora(root: Path, seed: int = 400) -> Lookalike:
    """A legacy LoRA finetune of a Phi LLM: adapter + ``non_lora_trainables.bin`` (the projector, with
    ``base_model.model.`` names) + the legacy config; the base is the plain LLM (``base=``), the tower a
    directory named by ``mm_vision_tower``."""
    tokenizer = make_tokenizer("phi")
    fields = text_fields("phi", len(tokenizer) + SPARE_ROWS, tokenizer)
    language_model = make_language_model(fields, seed, head_bias=False, tokenizer=tokenizer)
    tower = make_tower("siglip", seed + 10)
    projector = make_projector(seed + 20)
    tower_dir = write_tower_dir(root / "tower", "siglip", tower)
    base = root / "phi-base"
    base.mkdir(parents=True)
    write_json(base / "config.json", {**fields, "architectures": ["PhiForCausalLM"]})
    write_tensors(base, {k: v for k, v in language_model.state_dict().items() if k != "lm_head.bias"})
    tokenizer.save_pretrained(base)
    path = root / "phi-lora"
    adapter = _train_lora(language_model, LORA_TARGETS, path, seed)
    torch.save({f"base_model.model.model.mm_projector.{k}": v.clone() for k, v in projector.state_dict().items()},
               path / "non_lora_trainables.bin")
    config = legacy_config("phi", fields, tower_dir, "siglip")
    write_json(path / "config.json", config)
    targets = [n for n, m in language_model.named_modules()
               if isinstance(m, torch.nn.Linear) and n.rsplit(".", 1)[-1] in LORA_TARGETS]
    merged = merged_copy(language_model, adapter, "base_model.model.", targets)
    return Lookalike(path, "legacy", "siglip", merged, tower, projector, tokenizer, len(tokenizer), config,
                     {"base": base, "tower": tower_dir})


class FactoryModules(torch.nn.Module):
    """The Factory model's module names for the language model and connector (for fabricating LoRA)."""

    def __init__(self, language_model: torch.nn.Module, projector: torch.nn.Sequential) -> None:
        super().__init__()
        self.language_model = language_model
        self.connector = torch.nn.Module()
        self.connector._connector = projector


def make_factory_lora(root: Path, seed: int = 500) -> Lookalike:
    """A Factory LoRA run: stage directories with ``.base_layer`` names, adapter with full dotted targets."""
    original = make_factory(root, "phi", "siglip", seed, layout="stage")
    path = original.path
    modules = FactoryModules(original.language_model, original.projector)
    targets = [f"language_model.{n}" for n, m in original.language_model.named_modules()
               if isinstance(m, torch.nn.Linear) and "head" not in n]
    adapter = _train_lora(modules, targets, path, seed)
    wrapped = {t.removeprefix("language_model.") for t in targets}
    state = {}
    for key, value in original.language_model.state_dict().items():
        module, _, leaf = key.rpartition(".")
        state[f"{module}.base_layer.{leaf}" if module in wrapped else key] = value.clone()
    torch.save(state, path / "language_model" / "pytorch_model.bin")
    merged = merged_copy(modules, adapter, "base_model.model.", targets)
    return Lookalike(path, "factory", "siglip", merged.language_model, original.tower, original.projector,
                     original.tokenizer, original.live_vocab, original.config)


# ---------------------------------------------------------------------------------------------
# The test cases: one per format


def _projector_only(root: Path) -> tuple[Lookalike, dict[str, str]]:
    base = make_legacy(root / "base", "phi", "siglip", seed=7)
    return make_projector_only(root, base), {"base": str(base.path)}


def _legacy_lora(root: Path) -> tuple[Lookalike, dict[str, str]]:
    original = make_legacy_lora(root)
    return original, {"base": str(original.extra_dirs["base"])}


# case -> (fabricate(root) -> (original, --model-args), template, image tokens per image)
CASES: dict[str, tuple[Callable[[Path], tuple[Lookalike, dict[str, str]]], str, int]] = {
    "legacy-phi-siglip": (lambda root: (make_legacy(root, "phi", "siglip"), {}), "phi", 16),
    "legacy-llama-clip": (lambda root: (make_legacy(root, "llama", "clip", shards=1), {}), "v1", 16),
    "legacy-stablelm-siglip": (lambda root: (make_legacy(root, "stablelm", "siglip"), {}), "phi", 16),
    "factory-phi-siglip": (lambda root: (make_factory(root, "phi", "siglip"), {}), "phi", 15),
    "factory-phi-siglip-stage": (lambda root: (make_factory(root, "phi", "siglip", layout="stage"), {}), "phi", 15),
    "factory-qwen2-siglip": (lambda root: (make_factory(root, "qwen2", "siglip"), {}), "phi", 15),
    "factory-gemma-clip-stage": (lambda root: (make_factory(root, "gemma", "clip", layout="stage"), {}), "gemma", 16),
    "projector-only": (_projector_only, "phi", 16),
    "legacy-lora": (_legacy_lora, "phi", 16),
    "factory-lora": (lambda root: (make_factory_lora(root), {}), "phi", 15),
}


# ---------------------------------------------------------------------------------------------
# The original's full output vocabulary and image preprocessing


@torch.no_grad()
def reference_logits_all_rows(original: Lookalike, ids: Sequence[int], pixels: torch.Tensor | None) -> torch.Tensor:
    """The original architecture's logits over every row its checkpoint stores (padding rows included)."""
    return original.language_model(inputs_embeds=spliced_embeddings(original, ids, pixels)).logits[0]


def expand2square(image: Any, background: tuple[int, ...]) -> Any:
    """LLaVA's ``expand2square`` (llava/mm_utils.py, haotian-liu/LLaVA; TinyLLaVABench tinyllava/mm_utils.py at
    2d2105f): the image pasted at ((side - w) // 2, (side - h) // 2) on a square of the background colour."""
    from PIL import Image

    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    canvas = Image.new(image.mode, (side, side), background)
    canvas.paste(image, ((side - width) // 2, (side - height) // 2))
    return canvas


def original_image_processor(kind: str, image_size: int = IMAGE_SIZE) -> Any:
    """The tower repository's image processor at ``image_size``: SigLIP (square bicubic resize, mean/std 0.5)
    or CLIP (shortest edge, centre crop, OpenAI mean/std), the PIL-backed classes."""
    import transformers

    if kind == "siglip":
        cls = getattr(transformers, "SiglipImageProcessorPil", None) or transformers.SiglipImageProcessor
        return cls(size={"height": image_size, "width": image_size}, resample=3, image_mean=[0.5] * 3,
                   image_std=[0.5] * 3)
    cls = getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor
    return cls(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size},
               resample=3, image_mean=[0.48145466, 0.4578275, 0.40821073],
               image_std=[0.26862954, 0.26130258, 0.27577711])


def original_pixels(kind: str, images: Sequence[Any], pad: bool, image_size: int = IMAGE_SIZE) -> torch.Tensor:
    """LLaVA's ``process_images``: with ``image_aspect_ratio: pad`` each image is expanded to a square with
    ``tuple(int(x * 255) for x in image_mean)`` first, then the tower's processor runs (float32)."""
    processor = original_image_processor(kind, image_size)
    if pad:
        background = tuple(int(x * 255) for x in processor.image_mean)
        images = [expand2square(image, background) for image in images]
    return torch.as_tensor(processor(list(images), return_tensors="np")["pixel_values"], dtype=torch.float32)
