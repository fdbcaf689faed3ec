"""Tiny transformers VLM checkpoints with chat templates, for the ``hf`` adapter (random weights, real files).

- ``make_tiny_llava_chat``: the tests' tiny HF Llava plus a LlavaProcessor with the LLaVA chat template;
- ``make_tiny_idefics3``: an Idefics3 (SmolVLM architecture) with its own tokenizer and chat template.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    Idefics3Config,
    Idefics3ForConditionalGeneration,
    Idefics3ImageProcessorPil,
    Idefics3Processor,
    Idefics3VisionConfig,
    LlamaConfig,
    PreTrainedTokenizerFast,
)

from model_adapters.demo_model import demo_corpus
from model_adapters.llava_processor import attach_llava_processor
from tests.helpers.tiny_checkpoints import make_tiny_llava, shape_output_head

IDEFICS_SPECIAL = (
    "<unk>",
    "<|im_start|>",
    "<end_of_utterance>",
    "<pad>",
    "<image>",
    "<fake_token_around_image>",
    "<global-img>",
)
IDEFICS_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}:"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>"
    "{% elif part['type'] == 'text' %} {{ part['text'] }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)


def make_tiny_llava_chat(path: str | Path, tower: str = "clip") -> Path:
    """The tiny HF Llava of ``tiny_checkpoints`` with a LlavaProcessor carrying the LLaVA chat template."""
    out = make_tiny_llava(path, tower=tower, template="v1")  # type: ignore[arg-type]
    return attach_llava_processor(out)


def idefics_tokenizer() -> Any:
    """Byte-level BPE with Idefics3's special tokens; BOS ``<|im_start|>`` prepended."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=list(IDEFICS_SPECIAL),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([*demo_corpus(), "User: Assistant: System:"], trainer)
    bos = tok.token_to_id("<|im_start|>")
    tok.post_processor = processors.TemplateProcessing(
        single="<|im_start|> $A", pair="<|im_start|> $A <|im_start|> $B", special_tokens=[("<|im_start|>", bos)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<end_of_utterance>",
        pad_token="<pad>",
        unk_token="<unk>",
        extra_special_tokens={
            "image_token": "<image>",
            "fake_image_token": "<fake_token_around_image>",
            "global_image_token": "<global-img>",
        },
    )


def make_tiny_idefics3(path: str | Path, seed: int = 0) -> Path:
    """An Idefics3 checkpoint: LLaMA text model, 32-pixel single-tile images, 4 image tokens each."""
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = idefics_tokenizer()
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    vision = Idefics3VisionConfig(
        image_size=32, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2
    )
    config = Idefics3Config(
        text_config=text,
        vision_config=vision,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        scale_factor=2,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = Idefics3ForConditionalGeneration(config).eval()
    shape_output_head(model, tokenizer)
    model.save_pretrained(out)
    image_processor = Idefics3ImageProcessorPil(
        do_image_splitting=False, size={"longest_edge": 32}, max_image_size={"longest_edge": 32}
    )
    Idefics3Processor(
        image_processor=image_processor, tokenizer=tokenizer, image_seq_len=4, chat_template=IDEFICS_TEMPLATE
    ).save_pretrained(out)
    return out
