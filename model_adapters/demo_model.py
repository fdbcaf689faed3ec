"""The demo model: a tiny TinyLLaVA-shaped HF Llava (LLaMA + SigLIP + mlp2x_gelu).

``--model tinyllava:demo`` runs the checkpoint shipped in ``model_adapters/demo_checkpoint/``, trained by
``python -m training demo`` on the synthetic demo data's train split (see docs/training.md). When that folder
is missing, a random stand-in is built into the cache instead, with a warning that says how to rebuild the
trained one.

The random stand-in (``build_demo_checkpoint``, also the base of the tests' look-alike checkpoints) comes from
transformers config classes and a byte-level BPE tokenizer trained on a fixed built-in corpus, so it is
byte-for-byte reproducible from its seed; its weights are reshaped so that greedy answers are one or two demo
words with wide logit gaps.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from harness.paths import cache_dir
from model_adapters.templates import DEFAULT_SYSTEM

DEMO_DIRNAME = "demo-model-v1"
DEMO_CHECKPOINT_DIR = Path(__file__).resolve().parent / "demo_checkpoint"
REBUILD_HINT = "python -m training demo"
SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>", "<image>")
IMAGE_TOKEN = "<image>"
IMAGE_SIZE = 32
# How the random weights are shaped into short demo-word answers (see _shape_answers).
ANSWER_ROW_SCALE = 4.0
OTHER_ROW_SCALE = 0.5
EOS_GAIN = 3.0
ANSWER_EMBED_SHIFT = 1.5

COLOURS = ("red", "green", "blue", "yellow", "orange", "purple", "black", "white", "gray", "brown", "pink")
SHAPES = ("circle", "square", "triangle", "star", "rectangle", "diamond", "cross", "heart")
COUNTS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
POSITIONS = ("left", "right", "top", "bottom", "center", "middle")
SUFFIXES = (
    "Answer the question using a single word or phrase.",
    "Please answer yes or no.",
    "Answer with the option's letter from the given choices directly.",
)


def demo_corpus() -> list[str]:
    """The fixed text the demo tokenizer is trained on (deterministic order)."""
    lines = [DEFAULT_SYSTEM, "USER: ASSISTANT:", *SUFFIXES, "yes no Yes No A B C D 0 1 2 3 4 5 6 7 8 9 10"]
    for i, colour in enumerate(COLOURS):
        shape = SHAPES[i % len(SHAPES)]
        count = COUNTS[i % len(COUNTS)]
        where = POSITIONS[i % len(POSITIONS)]
        lines += [
            f"USER: What colour is the {shape}? {SUFFIXES[0]} ASSISTANT: {colour}",
            f"USER: Is there a {colour} {shape} in the image? {SUFFIXES[1]} ASSISTANT: yes",
            f"USER: How many {shape}s are there? {SUFFIXES[0]} ASSISTANT: {count}",
            f"USER: Where is the {colour} {shape}? ASSISTANT: on the {where}",
            f"The {colour} {shape} is at the {where} of the picture. There are {count} shapes.",
            f"Is the {shape} {colour}? No, it is not. What shape is {colour}? The {shape}.",
        ]
    lines += [" ".join(COLOURS), " ".join(SHAPES), " ".join(COUNTS), " ".join(POSITIONS)]
    return lines


def train_tokenizer(corpus: Iterable[str], vocab_size: int = 512) -> Any:
    """A byte-level BPE tokenizer (BOS prepended, like LLaMA) wrapped as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(corpus), trainer)
    bos_id = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        extra_special_tokens={"image_token": IMAGE_TOKEN},
    )


def tiny_text_config(tokenizer: Any) -> Any:
    """The tiny LLaMA language model of the demo (and of the tests' look-alike checkpoints)."""
    from transformers import LlamaConfig

    return LlamaConfig(
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


def _demo_config(tokenizer: Any) -> Any:
    from transformers import LlavaConfig, SiglipVisionConfig

    text = tiny_text_config(tokenizer)
    vision = SiglipVisionConfig(
        image_size=IMAGE_SIZE,
        patch_size=8,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=3,
        num_attention_heads=4,
        vision_use_head=False,
    )
    return LlavaConfig(
        text_config=text,
        vision_config=vision,
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        image_seq_length=(IMAGE_SIZE // 8) ** 2,
        vision_feature_select_strategy="full",
        vision_feature_layer=-2,
        projector_hidden_act="gelu",
    )


def answer_token_ids(tokenizer: Any) -> list[int]:
    """Ids of the answer words (colours, shapes, counts, positions, yes/no) that are one token after a space."""
    ids = []
    for word in (*COLOURS, *SHAPES, *COUNTS, *POSITIONS, "yes", "no"):
        pieces = tokenizer(" " + word, add_special_tokens=False).input_ids
        if len(pieces) == 1:
            ids.append(pieces[0])
    return sorted(set(ids))


def _shape_answers(model: Any, tokenizer: Any, seed: int) -> None:
    """Make the random model answer like a demo VQA model: one or two demo words, then EOS.

    The LM-head rows of the answer words are scaled up and all other rows down (wide logit gaps, so
    batched and unbatched greedy decoding agree). The answer words' input embeddings share a direction
    ``u`` and the EOS row points along ``u``, so EOS tends to follow an answer word.
    """
    import torch

    answers = answer_token_ids(tokenizer)
    embed = model.get_input_embeddings().weight
    head = model.get_output_embeddings().weight
    u = torch.randn(embed.shape[1], generator=torch.Generator().manual_seed(seed))
    u /= u.norm()
    with torch.no_grad():
        head.mul_(OTHER_ROW_SCALE)
        head[answers] *= ANSWER_ROW_SCALE / OTHER_ROW_SCALE
        head[tokenizer.eos_token_id] = EOS_GAIN * head.norm(dim=1).mean() * u
        embed[answers] += ANSWER_EMBED_SHIFT * embed.norm(dim=1).mean() * u


def _update_json(path: Path, extra: dict[str, Any]) -> None:
    data = json.loads(path.read_text())
    data.update(extra)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def build_demo_checkpoint(path: str | os.PathLike[str], seed: int = 0) -> Path:
    """Write the random stand-in demo checkpoint (model, tokenizer, image processor config) into ``path``."""
    import torch
    from transformers import LlavaForConditionalGeneration, SiglipImageProcessorPil

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(demo_corpus())
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(_demo_config(tokenizer)).eval()
    _shape_answers(model, tokenizer, seed)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    SiglipImageProcessorPil(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}).save_pretrained(out)
    _update_json(out / "config.json", {"conv_mode": "v1", "image_aspect_ratio": "pad", "harness_demo": True})
    return out


def trained_demo_checkpoint() -> Path | None:
    """The packaged trained demo checkpoint, or None when it is missing."""
    complete = all((DEMO_CHECKPOINT_DIR / name).is_file() for name in ("config.json", "model.safetensors"))
    return DEMO_CHECKPOINT_DIR if complete else None


def ensure_demo_checkpoint() -> Path:
    """The trained demo checkpoint; without it, the random stand-in (built once under ``cache_dir()``)."""
    trained = trained_demo_checkpoint()
    if trained is not None:
        return trained
    print(
        f"warning: the trained demo checkpoint {DEMO_CHECKPOINT_DIR} is missing; using an untrained random "
        f"stand-in (answers are noise). Rebuild it with: {REBUILD_HINT}",
        file=sys.stderr,
    )
    return ensure_random_demo_checkpoint()


def ensure_random_demo_checkpoint() -> Path:
    """The random stand-in under ``cache_dir()``, built on first use (atomic rename; races are harmless)."""
    final = cache_dir() / DEMO_DIRNAME
    if (final / "config.json").is_file():
        return final
    tmp = Path(tempfile.mkdtemp(prefix=f".{DEMO_DIRNAME}-", dir=final.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache may be shared
        build_demo_checkpoint(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / "config.json").is_file():  # not another process winning the race
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def demo_prompts(n: int) -> Sequence[str]:
    """``n`` varied demo questions (for smoke tests and timing)."""
    questions = []
    for i in range(n):
        colour, shape = COLOURS[i % len(COLOURS)], SHAPES[i % len(SHAPES)]
        kind = i % 3
        if kind == 0:
            questions.append(f"What colour is the {shape}?\n{SUFFIXES[0]}")
        elif kind == 1:
            questions.append(f"Is there a {colour} {shape} in the image?\n{SUFFIXES[1]}")
        else:
            questions.append(f"How many {shape}s are on the {POSITIONS[i % len(POSITIONS)]}?")
    return questions
