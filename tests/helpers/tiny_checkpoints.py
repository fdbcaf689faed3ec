"""Fabricate tiny HF Llava checkpoints (random weights, real files) for tests.

``make_tiny_llava`` writes a complete checkpoint directory in well under a second: model weights,
a byte-level BPE tokenizer, image processor settings and config.json. The CLIP variant can mimic
bczhou/tiny-llava-v1-hf (transformers 4.36 key layout and an old processor config).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors.torch import load_file, save_file
from transformers import (
    CLIPImageProcessorPil,
    CLIPVisionConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    SiglipImageProcessorPil,
    SiglipVisionConfig,
)

from model_adapters.demo_model import demo_corpus, tiny_text_config, train_tokenizer

IMAGE_SIZE = 32
PATCH_SIZE = 8
HEAD_SCALE = 4.0  # wide logit gaps: greedy answers do not flip on float noise between batch sizes
UNREADABLE_SCALE = 0.05  # tokens with control or non-ASCII characters are (practically) never generated
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

Tower = Literal["clip", "siglip"]


def tiny_tokenizer() -> Any:
    """The byte-level BPE tokenizer the tiny checkpoints use (BOS prepended, ``<image>`` special)."""
    return train_tokenizer(demo_corpus())


def tiny_config(tokenizer: Any, tower: Tower) -> LlavaConfig:
    """A LLaMA + CLIP/SigLIP Llava config with 16 image tokens per 32-pixel image."""
    text = tiny_text_config(tokenizer)
    sizes = dict(
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=3,
        num_attention_heads=4,
    )
    if tower == "clip":
        vision: Any = CLIPVisionConfig(projection_dim=16, **sizes)
    else:
        vision = SiglipVisionConfig(vision_use_head=False, **sizes)
    return LlavaConfig(
        text_config=text,
        vision_config=vision,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        image_seq_length=(IMAGE_SIZE // PATCH_SIZE) ** 2,
        vision_feature_select_strategy="default" if tower == "clip" else "full",
        vision_feature_layer=-2,
    )


def image_processor(tower: Tower) -> Any:
    if tower == "clip":
        return CLIPImageProcessorPil(
            size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
        )
    return SiglipImageProcessorPil(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})


def readable_token_ids(tokenizer: Any) -> list[int]:
    """Special tokens and tokens that decode to printable ASCII (no tabs, newlines or stray bytes)."""
    ids = []
    for token_id in range(len(tokenizer)):
        text = tokenizer.decode([token_id])
        if token_id in tokenizer.all_special_ids or (text.isascii() and text.isprintable()):
            ids.append(token_id)
    return ids


def shape_output_head(model: Any, tokenizer: Any) -> None:
    """Scale the LM head for wide logit gaps, and nearly silence unreadable tokens.

    Random answers then are printable one-line text (scorers and sample logs see ordinary strings),
    and greedy decoding does not flip between batch sizes on float noise.
    """
    head = model.get_output_embeddings().weight
    readable = torch.zeros(head.shape[0], dtype=torch.bool)
    readable[readable_token_ids(tokenizer)] = True
    with torch.no_grad():
        head.mul_(HEAD_SCALE)
        head[~readable] *= UNREADABLE_SCALE


def write_old_processor_config(path: Path) -> None:
    """A 2024-style preprocessor_config.json: no patch_size, no vision_feature_select_strategy."""
    config = {
        "crop_size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        "do_center_crop": True,
        "do_convert_rgb": True,
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": CLIP_MEAN,
        "image_processor_type": "CLIPImageProcessor",
        "image_std": CLIP_STD,
        "processor_class": "LlavaProcessor",
        "resample": 3,
        "rescale_factor": 0.00392156862745098,
        "size": {"shortest_edge": IMAGE_SIZE},
    }
    (path / "preprocessor_config.json").write_text(json.dumps(config, indent=2) + "\n")


def rename_vision_keys_to_436(path: Path) -> None:
    """Rewrite the weights with transformers-4.36 vision names (``vision_tower.vision_model.*``)."""
    file = path / "model.safetensors"
    tensors = load_file(file)
    renamed = {}
    for key, value in tensors.items():
        if key.startswith("vision_tower.") and not key.startswith("vision_tower.vision_model."):
            key = "vision_tower.vision_model." + key.removeprefix("vision_tower.")
        renamed[key] = value
    save_file(renamed, file, metadata={"format": "pt"})


def update_config(path: Path, **fields: Any) -> None:
    """Set top-level fields of the checkpoint's config.json."""
    file = path / "config.json"
    data = json.loads(file.read_text())
    data.update(fields)
    file.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def make_tiny_llava(
    path: str | Path,
    tower: Tower = "clip",
    template: str | None = "phi",
    old_processor_config: bool = False,
    seed: int = 0,
) -> Path:
    """Write a tiny HF Llava checkpoint into ``path`` and return it.

    ``template`` becomes config.json's ``conv_mode`` (None: no template declared). With
    ``old_processor_config`` (CLIP only) the checkpoint mimics tiny-llava-v1-hf: 4.36 vision key names
    and a preprocessor_config.json without a processor_config.json; otherwise the processor is saved
    the transformers 5 way (processor_config.json with a nested image processor).
    """
    if old_processor_config and tower != "clip":
        raise ValueError("old_processor_config mimics tiny-llava-v1-hf, which has a CLIP tower")
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = tiny_tokenizer()
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(tiny_config(tokenizer, tower)).eval()
    shape_output_head(model, tokenizer)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    if old_processor_config:
        write_old_processor_config(out)
        rename_vision_keys_to_436(out)
    elif tower == "clip":
        LlavaProcessor(
            image_processor=image_processor(tower),
            tokenizer=tokenizer,
            patch_size=PATCH_SIZE,
            vision_feature_select_strategy="default",
            num_additional_image_tokens=1,
            image_token="<image>",
        ).save_pretrained(out)
    else:
        image_processor(tower).save_pretrained(out)
    if template is not None:
        update_config(out, conv_mode=template)
    return out
