"""``python -m harness convert``: any TinyLLaVA checkpoint as a plain HF Llava checkpoint.

The output loads with ``LlavaForConditionalGeneration.from_pretrained`` and ``AutoProcessor`` alone (no custom
code) and with vLLM's Llava loader: weights in the transformers-4.36 Llava layout, which keep every
embedding and LM-head row of the original (a padded vocabulary included); config.json with
``architectures``, the text model's ``architectures``, ``conv_mode`` and ``image_aspect_ratio``; the tokenizer
with ``<image>``; and a LlavaProcessor with ``patch_size``, ``vision_feature_select_strategy``, a chat template
rendering the conversation format and, for ``image_aspect_ratio: pad``, a ``LlavaImageProcessor`` with
``do_pad`` (LLaVA's ``expand2square``). What plain Llava cannot hold, an lm_head bias, goes to
``lm_head_bias.safetensors``: the tinyllava adapter re-attaches it, and :func:`plain_transformers_warnings`
says what plain transformers loses without it. ``with_lm_head_bias`` also writes it as
``language_model.lm_head.bias`` (vLLM's Phi has a biased head and refuses a checkpoint without one).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from harness.errors import HarnessError, UsageError
from model_adapters.formats import FORMATS, Converted, detect
from model_adapters.formats import load as load_converted
from model_adapters.formats.converted import IMAGE_TOKEN
from model_adapters.formats.preview import declared_settings
from model_adapters.formats.runtime import (
    LM_HEAD_BIAS_FILE,
    LM_HEAD_BIAS_KEY,
    SOURCE_FORMAT_KEY,
    build_model,
    checkpoint_state,
    origin_format,
    read_lm_head_bias,
)
from model_adapters.formats.tensors import Tensors, main_float_dtype
from model_adapters.loading import check_vocabulary, load_pretrained, load_tokenizer
from model_adapters.templates import ChatTemplate

CONVERT_ARGS = ("base", "tower", "conv", "dtype", "image_aspect_ratio")
MAX_SHARD_BYTES = 5 * 1024**3
HEAD_BIAS_WEIGHT = "language_model.lm_head.bias"
# Language models whose native head has a bias (transformers' and vLLM's PhiForCausalLM).
BIASED_HEADS = ("phi",)
INPUT_SCALED_FAMILIES = ("gemma",)  # transformers 4.x multiplies all inputs_embeds by sqrt(hidden_size)


@dataclass
class ConvertReport:
    """What ``convert`` wrote and what a reader of the output must know."""

    source_format: str
    destination: Path
    template: str
    image_aspect_ratio: str
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class _Model:
    """A loaded Llava model and everything written beside it."""

    model: Any
    tokenizer: Any
    image_processor: dict[str, Any]
    lm_head_bias: torch.Tensor | None
    live_vocab: int
    notes: list[str]
    stored_vocab: int = 0  # rows the source checkpoint stores


def convert_checkpoint(
    src: str | Path, dst: str | Path, args: Mapping[str, str], with_lm_head_bias: bool = False
) -> ConvertReport:
    """Write the checkpoint ``src`` (any supported format) as a plain HF Llava checkpoint in ``dst``.

    ``with_lm_head_bias`` also writes the checkpoint's head bias (trained, or zeros) as the weight
    ``language_model.lm_head.bias``, which vLLM's Phi needs; plain transformers reports it as unexpected and
    ignores it.
    """
    from model_adapters.tinyllava import DTYPES, check_model_args, choose_template, resolve_checkpoint

    check_model_args(args, CONVERT_ARGS)
    source, _ = resolve_checkpoint(str(src))
    out = Path(dst).expanduser()
    if out.exists() and any(out.iterdir()):
        raise HarnessError(f"destination {out} exists and is not empty")
    if "dtype" in args and args["dtype"] not in DTYPES:
        raise UsageError(f"--model-args dtype={args['dtype']} is not valid; choose one of {', '.join(DTYPES)}")
    detected = detect(source)
    declared = detected.config if detected.format == "hf_llava" else declared_settings(detected)
    template = choose_template(args, declared, source)
    asked = str(args.get("image_aspect_ratio") or declared.get("image_aspect_ratio") or "")
    if asked not in ("pad", "square", ""):
        raise UsageError(f"image_aspect_ratio '{asked}' is not supported (pad, square)")
    dtype = DTYPES[args["dtype"]] if "dtype" in args else None
    if detected.format == "hf_llava":
        loaded = _load_hf_llava(source, dtype)
    else:
        loaded = _load_other(load_converted(source, detected, args.get("base"), args.get("tower")), dtype)
    aspect = asked or ("pad" if loaded.image_processor.get("do_pad") is True else "square")  # an HF Llava padder
    family = str(loaded.model.config.text_config.model_type)
    if with_lm_head_bias and family not in BIASED_HEADS:
        raise UsageError(
            f"--with-lm-head-bias: the {family} language model has no lm_head bias (only {', '.join(BIASED_HEADS)})"
        )
    origin = origin_format(detected.format, detected.config)  # converted again, it keeps its first format
    padded = _write_whole(out, loaded, template, aspect, origin, with_lm_head_bias)
    return ConvertReport(
        source_format=FORMATS[detected.format],
        destination=out,
        template=template.name,
        image_aspect_ratio=aspect,
        warnings=plain_transformers_warnings(loaded.lm_head_bias, loaded.live_vocab, out, loaded.stored_vocab),
        notes=loaded.notes + ([] if padded else _aspect_notes(aspect, loaded.image_processor))
        + _bias_notes(family, with_lm_head_bias) + _input_scale_notes(family, origin),
    )


def _load_other(converted: Converted, dtype: torch.dtype | None) -> _Model:
    tensors: Tensors = {**converted.text.tensors, **converted.vision.tensors, **converted.projector.tensors}
    model = build_model(converted, dtype or main_float_dtype(tensors), "eager", "cpu", with_bias=False)
    return _Model(model, converted.tokenizer, converted.image_processor, converted.lm_head_bias,
                  converted.live_vocab, list(converted.notes), converted.stored_vocab)


def _load_hf_llava(path: Path, dtype: torch.dtype | None) -> _Model:
    from transformers import LlavaForConditionalGeneration

    from model_adapters.tinyllava import load_image_processor

    tokenizer = load_tokenizer(path)
    image_processor = load_image_processor(path).to_dict()
    model = load_pretrained(LlavaForConditionalGeneration, path, dtype=dtype if dtype is not None else "auto")
    check_vocabulary(tokenizer, model, path, path)
    bias = read_lm_head_bias(path)
    live = model.get_output_embeddings().out_features
    if bias is not None:
        live = int((bias > torch.finfo(torch.float32).min).sum())
    return _Model(model.eval(), tokenizer, image_processor, bias, live, [], model.get_output_embeddings().out_features)


def _write_whole(out: Path, loaded: _Model, template: ChatTemplate, aspect: str, source_format: str,
                 with_lm_head_bias: bool) -> bool:
    """``_write`` into a hidden sibling folder renamed to ``out`` when complete: a failed or killed convert never
    leaves a half-written checkpoint where a later run (or vLLM) would take it for a whole one."""
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        padded = _write(work, loaded, template, aspect, source_format, with_lm_head_bias)
        work.chmod(0o755)  # mkdtemp makes it private
        os.replace(work, out)  # onto a missing or empty folder
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return padded


def _write(out: Path, loaded: _Model, template: ChatTemplate, aspect: str, source_format: str,
           with_lm_head_bias: bool = False) -> bool:
    """Write the checkpoint; True when its image processor pads to a square itself."""
    from transformers import LlavaProcessor

    from model_adapters.llava_processor import llava_chat_template, llava_image_processor
    from model_adapters.tinyllava import image_processor_from_dict

    out.mkdir(parents=True, exist_ok=True)
    model, config = loaded.model, loaded.model.config
    state = checkpoint_state(model)
    if with_lm_head_bias:
        state[HEAD_BIAS_WEIGHT] = head_bias_weight(loaded)
    save_weights(out, state)
    config.architectures = ["LlavaForConditionalGeneration"]
    config.text_config.architectures = [causal_lm_class(config.text_config.model_type)]
    config.save_pretrained(out)
    dtype = str(model.get_output_embeddings().weight.dtype).removeprefix("torch.")
    _update_json(out / "config.json", {
        "conv_mode": template.name,
        "image_aspect_ratio": aspect,
        SOURCE_FORMAT_KEY: source_format,
        "torch_dtype": dtype,  # the name transformers 4.x and vLLM read
    })
    _portable_text_config(out / "config.json")
    model.generation_config.save_pretrained(out)
    tokenizer = loaded.tokenizer
    image_processor = llava_image_processor(loaded.image_processor, pad=True) if aspect == "pad" else None
    padded = image_processor is not None
    if image_processor is None:
        image_processor = image_processor_from_dict(loaded.image_processor)
    if image_processor is None and str(loaded.image_processor.get("image_processor_type", "")).startswith("Llava"):
        image_processor = llava_image_processor(loaded.image_processor, pad=False)
    if image_processor is None:
        raise HarnessError("only CLIP and SigLIP image processors can be written")
    vision = config.vision_config
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=vision.patch_size,
        vision_feature_select_strategy=config.vision_feature_select_strategy,
        num_additional_image_tokens=1 if vision.model_type.startswith("clip") else 0,
        image_token=IMAGE_TOKEN,
        chat_template=llava_chat_template(template.system),
    )
    processor.save_pretrained(out)
    image_processor.save_pretrained(out)  # preprocessor_config.json, which transformers 4.x reads
    tokenizer.save_pretrained(out)
    _portable_tokenizer_config(out / "tokenizer_config.json")
    if loaded.lm_head_bias is not None:
        from safetensors.torch import save_file

        save_file({LM_HEAD_BIAS_KEY: loaded.lm_head_bias.float().contiguous()}, out / LM_HEAD_BIAS_FILE,
                  metadata={"format": "pt"})
    return padded


def causal_lm_class(model_type: str) -> str:
    """The transformers causal-LM class name of a text ``model_type`` (what vLLM's Llava builds the LLM from)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    name = MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(model_type)
    if name is None:
        raise HarnessError(f"no transformers causal-LM class for the text model type '{model_type}'")
    return str(name)


def head_bias_weight(loaded: _Model) -> torch.Tensor:
    """The original checkpoint's head bias as a weight in the model's dtype: trained values, or zeros, over
    every row the checkpoint stores (rows its loader cuts off are not masked: the weights are the checkpoint's,
    as plain transformers computes them), and the dtype's lowest value for an appended ``<image>`` row."""
    head = loaded.model.get_output_embeddings()
    dtype = head.weight.dtype
    weight = torch.zeros(head.out_features, dtype=torch.float32)
    stored = loaded.stored_vocab or head.out_features
    if loaded.lm_head_bias is not None:
        keep = min(loaded.live_vocab, stored)
        weight[:keep] = loaded.lm_head_bias[:keep].float()
    weight[stored:] = torch.finfo(dtype).min
    return weight.to(dtype).contiguous()


def _portable_tokenizer_config(path: Path) -> None:
    """What transformers 4.x needs in ``tokenizer_config.json``: transformers 5 writes ``TokenizersBackend``, a name
    4.x cannot resolve (``PreTrainedTokenizerFast`` names the same tokenizer.json-backed class in both); and 4.x's
    ``PreTrainedTokenizerFast`` also returns ``token_type_ids`` unless told its input names, which Llava passes on
    to the language model (4.x StableLM's ``forward`` rejects them)."""
    data = json.loads(path.read_text())
    if data.get("tokenizer_class") == "TokenizersBackend":
        data["tokenizer_class"] = "PreTrainedTokenizerFast"
    data.setdefault("model_input_names", ["input_ids", "attention_mask"])
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _portable_text_config(path: Path) -> None:
    """transformers 5 writes RoPE settings only as ``rope_parameters``; 4.x reads ``rope_theta``,
    ``partial_rotary_factor`` and ``rope_scaling`` and would fall back to its defaults (Qwen2's 1e6 theta read
    as 10000, phi-2's 0.4 rotary share as 0.5). Both spellings are written; 5 reads its own."""
    data = json.loads(path.read_text())
    text = data.get("text_config") or {}
    rope = text.get("rope_parameters")
    if not isinstance(rope, dict):
        return
    flat = ("rope_theta", "partial_rotary_factor")
    for key in flat:
        if key in rope:
            text.setdefault(key, rope[key])
    if rope.get("rope_type", "default") != "default":
        text.setdefault("rope_scaling", {k: v for k, v in rope.items() if k not in flat})
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def save_weights(out: Path, state: Tensors) -> None:
    """``model.safetensors``, or shards of at most 5 GiB with ``model.safetensors.index.json``."""
    from safetensors.torch import save_file

    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for key in sorted(state):
        tensor = state[key].contiguous()
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and size + nbytes > MAX_SHARD_BYTES:
            shards.append({})
            size = 0
        shards[-1][key] = tensor
        size += nbytes
    if len(shards) == 1:
        save_file(shards[0], out / "model.safetensors", metadata={"format": "pt"})
        return
    weight_map = {}
    for i, shard in enumerate(shards, start=1):
        name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, out / name, metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(shard, name))
    total = sum(t.numel() * t.element_size() for t in state.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")


def _update_json(path: Path, extra: Mapping[str, Any]) -> None:
    data = json.loads(path.read_text())
    data.update(extra)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def plain_transformers_warnings(bias: torch.Tensor | None, live: int, out: Path, stored: int = 0) -> list[str]:
    """What plain ``LlavaForConditionalGeneration`` loses by ignoring ``lm_head_bias.safetensors``.

    ``live``: rows the original's loader keeps; ``stored``: rows the source checkpoint stores (all kept).
    """
    if bias is None:
        return []
    rows = int(bias.shape[0])
    stored = min(stored or rows, rows)
    trained = bias[:live]
    lines = [
        f"plain transformers ignores {out / LM_HEAD_BIAS_FILE} (tensor '{LM_HEAD_BIAS_KEY}', {rows} values): "
        "LlavaForConditionalGeneration's lm_head has no bias."
    ]
    if bool(trained.any()):
        lines.append(
            f"  It holds the original's trained lm_head.bias (max |b| = {float(trained.abs().max()):.4g}); "
            "without it every logit loses its bias term, so scores and greedy answers can differ from the original."
        )
    if stored > live:
        lines.append(
            f"  Rows {live}..{stored - 1} (padding rows of the checkpoint's vocabulary, which the original's loader "
            "cuts off) are masked by it; plain transformers keeps them with the checkpoint's weights, so a greedy "
            f"step picks one where the checkpoint's own head would: it decodes to '' (row {live}, also the "
            f"{IMAGE_TOKEN} token, to '{IMAGE_TOKEN}' unless skip_special_tokens)."
        )
    if rows > stored:
        lines.append(
            f"  Row {stored} (the added {IMAGE_TOKEN} token) is masked by it; plain transformers gives it logit 0, "
            "which a greedy step picks only when every real logit is below 0."
        )
    lines.append(f"  `python -m harness run --model tinyllava:{out}` re-attaches the bias (exact scores).")
    return lines


def _bias_notes(family: str, with_lm_head_bias: bool) -> list[str]:
    if family not in BIASED_HEADS:
        return []
    if with_lm_head_bias:
        return [f"model.safetensors holds {HEAD_BIAS_WEIGHT} (the checkpoint's head bias, or zeros) for vLLM's "
                f"{family} model; plain transformers lists it as an unexpected key and ignores it"]
    return [f"vLLM's {family} model needs {HEAD_BIAS_WEIGHT}; convert with --with-lm-head-bias to load it there"]


def _input_scale_notes(family: str, origin: str) -> list[str]:
    if family not in INPUT_SCALED_FAMILIES or origin == "hf_llava":  # no original behind it
        return []
    return [f"the original {family} model multiplied image features by sqrt(hidden_size), as transformers 4.x's "
            f"{family} does with every input embedding; transformers 5 scales only token embeddings, so plain "
            "transformers 5 computes the original only through --model tinyllava:DST (4.x computes it as is)"]


def _aspect_notes(aspect: str, image_processor: Mapping[str, Any]) -> list[str]:
    if aspect != "pad":
        return []
    mean = tuple(int(x * 255) for x in image_processor.get("image_mean") or ())
    return [
        "image_aspect_ratio is 'pad' but this image processor cannot pad; pad each image to a square with the "
        f"mean colour {mean} first to match the original (the tinyllava adapter does)"
    ]
