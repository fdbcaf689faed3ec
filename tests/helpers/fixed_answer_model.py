"""A tiny checkpoint that answers every prompt with one fixed token, and a damaged copy of a checkpoint.

``make_fixed_answer_model`` edits a tiny Llava (``tests.helpers.tiny_checkpoints``) into a bigram model: every
decoder layer's output projections are zeroed, so the last hidden state is the current token's
embedding. All input embeddings but the answer's point along one direction, the answer's along an
orthogonal one; the LM head maps the first direction to the answer token and the second to EOS. So
whatever the prompt (and image), greedy decoding gives the answer token, then EOS: a model with known,
non-trivial scores (answering "Yes" gets half of MME's questions right).

``damage_checkpoint`` writes a copy of a checkpoint with two LM-head rows swapped; swapping the answer's
and EOS's makes the fixed-answer model stop before answering: the deliberately broken model the gate
must catch.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from tests.helpers.tiny_checkpoints import make_tiny_llava, tiny_tokenizer

GAIN = 50.0


def make_fixed_answer_model(path: Path, answer: str = "Yes", template: str = "phi") -> Path:
    """A checkpoint whose every answer is ``answer`` (which must be one token of the tiny tokenizer)."""
    tokenizer = tiny_tokenizer()
    ids = tokenizer(answer, add_special_tokens=False).input_ids
    if len(ids) != 1:
        raise ValueError(f"{answer!r} is {len(ids)} tokens in the tiny tokenizer; pick a one-token answer")
    answer_id, eos_id = ids[0], tokenizer.eos_token_id
    out = make_tiny_llava(path, tower="siglip", template=template)
    file = out / "model.safetensors"
    tensors = load_file(file)
    for key in tensors:
        if key.endswith(("self_attn.o_proj.weight", "mlp.down_proj.weight")) and "language_model" in key:
            tensors[key] = torch.zeros_like(tensors[key])
    embed_key = next(k for k in tensors if k.endswith("embed_tokens.weight"))
    head_key = next(k for k in tensors if k.endswith("lm_head.weight"))
    embed, head = tensors[embed_key], tensors[head_key]
    hidden = embed.shape[1]
    prompt_dir, answer_dir = torch.zeros(hidden), torch.zeros(hidden)
    prompt_dir[0], answer_dir[1] = 1.0, 1.0
    embed = prompt_dir.repeat(embed.shape[0], 1).to(embed.dtype)
    embed[answer_id] = answer_dir
    head = torch.zeros_like(head)
    head[answer_id] = GAIN * prompt_dir
    head[eos_id] = GAIN * answer_dir
    tensors[embed_key], tensors[head_key] = embed.contiguous(), head.contiguous()
    save_file(tensors, file, metadata={"format": "pt"})
    return out


def answer_token_id(answer: str = "Yes") -> int:
    return int(tiny_tokenizer()(answer, add_special_tokens=False).input_ids[0])


def damage_checkpoint(src: Path, dst: Path, answer: str = "Yes") -> Path:
    """A copy of ``src`` with the LM-head rows of ``answer``'s token and of EOS swapped."""
    shutil.copytree(src, dst)
    file = Path(dst) / "model.safetensors"
    tensors = load_file(file)
    head_key = next(k for k in tensors if k.endswith("lm_head.weight"))
    head = tensors[head_key].clone()
    a, b = answer_token_id(answer), tiny_tokenizer().eos_token_id
    head[[a, b]] = head[[b, a]]
    tensors[head_key] = head.contiguous()
    save_file(tensors, file, metadata={"format": "pt"})
    return Path(dst)
