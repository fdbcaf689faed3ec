"""Give an HF Llava checkpoint a ``LlavaProcessor`` whose chat template renders the LLaVA prompt.

HF-generic code (the ``hf`` adapter, lmms-eval's ``llava_hf``) then builds exactly the prompt text the
``tinyllava`` adapter builds: ``{system} USER: <image>\\n{question} ASSISTANT:``.
"""

from __future__ import annotations

import json
from pathlib import Path

from model_adapters.templates import DEFAULT_SYSTEM


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
