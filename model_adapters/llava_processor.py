"""Give an HF Llava checkpoint a ``LlavaProcessor`` whose chat template renders the LLaVA prompt.

HF-generic code (the ``hf`` adapter, lmms-eval's ``llava_hf``) then builds exactly the prompt text the
``tinyllava`` adapter builds: ``{system} USER: <image>\\n{question} ASSISTANT:``. For checkpoints trained
with ``image_aspect_ratio: pad``, :func:`llava_image_processor` expresses LLaVA's ``expand2square`` as
transformers' own ``LlavaImageProcessor`` with ``do_pad``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from model_adapters.templates import DEFAULT_SYSTEM

# Settings of the CLIP and SigLIP image processors that LlavaImageProcessor shares; SigLIP never centre-crops.
SHARED_SETTINGS = ("do_resize", "size", "resample", "do_center_crop", "crop_size", "do_rescale", "rescale_factor",
                   "do_normalize", "image_mean", "image_std", "do_convert_rgb")
PADDABLE = ("CLIPImageProcessor", "SiglipImageProcessor", "LlavaImageProcessor")


def llava_chat_template(system: str = DEFAULT_SYSTEM) -> str:
    """Jinja for LLaVA's "TWO" conversation: image parts become ``<image>\\n``, text parts are copied."""
    parts = (
        "{%- for p in m['content'] -%}"
        "{%- if p['type'] == 'image' -%}{{ '<image>\\n' }}{%- elif p['type'] == 'text' -%}{{ p['text'] }}{%- endif -%}"
        "{%- endfor -%}"
    )
    return (
        "{%- if messages and messages[0]['role'] == 'system' -%}"
        "{%- set m = messages[0] -%}{%- set turns = messages[1:] -%}"
        "{%- if m['content'] is string -%}{{ m['content'] }}{%- else -%}" + parts + "{%- endif -%}"
        "{%- else -%}{{ " + json.dumps(system) + " }}{%- set turns = messages -%}{%- endif -%}"
        "{%- for m in turns -%}"
        "{%- if m['role'] == 'user' %} USER: {% else %} ASSISTANT: {% endif -%}"
        "{%- if m['content'] is string -%}{{ m['content'] }}{%- else -%}" + parts + "{%- endif -%}"
        "{%- if m['role'] == 'assistant' -%}{{ eos_token }}{%- endif -%}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt %} ASSISTANT:{% endif -%}"
    )


def attach_llava_processor(path: str | Path, system: str = DEFAULT_SYSTEM) -> Path:
    """Save a LlavaProcessor (the checkpoint's tokenizer and image processor) with the LLaVA chat template."""
    from transformers import AutoConfig, AutoImageProcessor, AutoTokenizer, LlavaProcessor

    out = Path(path)
    config = AutoConfig.from_pretrained(out)
    vision = config.vision_config
    has_cls_token = vision.model_type.startswith("clip")
    processor = LlavaProcessor(
        image_processor=AutoImageProcessor.from_pretrained(out),
        tokenizer=AutoTokenizer.from_pretrained(out),
        patch_size=vision.patch_size,
        vision_feature_select_strategy=config.vision_feature_select_strategy,
        num_additional_image_tokens=1 if has_cls_token else 0,
        image_token="<image>",
        chat_template=llava_chat_template(system),
    )
    processor.save_pretrained(out)
    return out


def llava_image_processor(settings: Mapping[str, Any], pad: bool) -> Any:
    """A ``LlavaImageProcessor`` (its PIL variant, which needs no torchvision) with the CLIP/SigLIP ``settings``.

    With ``pad`` it pads each image to a square before resizing, as LLaVA's ``expand2square`` does: the
    image centred on a ``tuple(int(x * 255) for x in image_mean)`` background. None for other processors.
    """
    import transformers

    kind = str(settings.get("image_processor_type", "")).removesuffix("Fast").removesuffix("Pil")
    if kind not in PADDABLE:
        return None
    source = _pil_class(transformers, kind).from_dict(dict(settings)).to_dict()  # with the class defaults
    values = {key: source[key] for key in SHARED_SETTINGS if key in source}
    if kind == "SiglipImageProcessor":
        values.update(do_center_crop=False, crop_size=values.get("size"))
    values["do_pad"] = pad
    return _pil_class(transformers, "LlavaImageProcessor")(**values)


def _pil_class(transformers: Any, kind: str) -> Any:
    """``{kind}Pil`` (transformers 5); before 5 the plain class is the PIL-backed one."""
    return getattr(transformers, kind + "Pil", None) or getattr(transformers, kind)
