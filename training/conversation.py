"""LLaVA conversations as token ids and labels: every token is masked except the assistant turns.

A chat template (``phi``, ``v1``, ``llama``, ``gemma``, ``qwen2``, from ``model_adapters.templates``) renders
LLaVA's "TWO" style, ``{system} USER: {q1} ASSISTANT: {a1}{stop}USER: {q2} ASSISTANT: {a2}{stop}``, where the
stop string is the language model's EOS. ``plain`` (pretraining) renders ``<image>{caption}\\n``.

Text is tokenised as at inference (``tokenizer_image_token``): split on ``<image>``, each chunk on its own with
the tokenizer's default special tokens, a leading BOS kept once; the image token is repeated once per image
feature. A token is trained when its characters overlap an assistant answer or the stop after it (found from
the fast tokenizer's offsets), so the mask does not depend on per-tokenizer length arithmetic. The space
after ``ASSISTANT:`` counts as part of the answer: the inference prompt ends at the colon, so the model must
learn to produce it, also when a small vocabulary has it as a token of its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from model_adapters.templates import TEMPLATES

IGNORE_INDEX = -100
IMAGE_PLACEHOLDER = "<image>"
PLAIN = "plain"
HUMAN, GPT = "human", "gpt"


class BadSample(ValueError):
    """A sample that cannot be trained on; ``reason`` is a short code used in the skip summary."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def template_names() -> list[str]:
    """The chat templates plus ``plain``."""
    return [*TEMPLATES, PLAIN]


@dataclass(frozen=True)
class Rendered:
    """Conversation text and the character spans whose tokens are trained."""

    text: str
    trained: tuple[tuple[int, int], ...]


def normalise_turns(conversations: Sequence[Mapping[str, Any]], has_image: bool) -> list[tuple[str, str]]:
    """(question, answer) pairs; the image placeholder moved to the front of the first question.

    Leading non-human turns are dropped (as LLaVA does), roles must then alternate human/gpt, and a last
    unanswered question is dropped. A text-only sample loses any stray placeholder.
    """
    turns = [(str(t.get("from", "")), str(t.get("value", ""))) for t in conversations]
    while turns and turns[0][0] != HUMAN:
        turns.pop(0)
    if turns and turns[-1][0] == HUMAN:
        turns.pop()
    if not any(role == GPT for role, _ in turns):
        raise BadSample("no_assistant_turn", "the conversation has no gpt turn after a human turn")
    expected = [HUMAN, GPT] * (len(turns) // 2)
    if [role for role, _ in turns] != expected:
        raise BadSample("bad_conversation", "roles do not alternate human/gpt")
    pairs = [(turns[i][1].replace(IMAGE_PLACEHOLDER, "").strip(), turns[i + 1][1]) for i in range(0, len(turns), 2)]
    if has_image:
        pairs[0] = (f"{IMAGE_PLACEHOLDER}\n{pairs[0][0]}", pairs[0][1])
    return pairs


def render(template: str, pairs: Sequence[tuple[str, str]], has_image: bool, system: str | None = None) -> Rendered:
    """The training text of a conversation under ``template`` and its trained spans (``system`` replaces the
    template's system text when given)."""
    if template == PLAIN:  # LLaVA's preprocess_plain: the image, the first answer, a newline
        prefix = IMAGE_PLACEHOLDER if has_image else ""
        text = f"{prefix}{pairs[0][1]}\n"
        return Rendered(text, ((len(prefix), len(text)),))
    chat = TEMPLATES[template]
    text = f"{chat.system if system is None else system} "
    spans = []
    for question, answer in pairs:
        text += f"USER: {question} ASSISTANT:"
        start = len(text)  # the space belongs to the answer: tokenizers attach it to the word after it
        text += f" {answer}{chat.stop}"
        spans.append((start, len(text)))
    return Rendered(text, tuple(spans))


def _encode(tokenizer: Any, chunk: str) -> tuple[list[int], list[tuple[int, int]]]:
    try:
        enc = tokenizer(chunk, return_offsets_mapping=True)
    except NotImplementedError as exc:
        raise TypeError("training needs a fast tokenizer (offset mapping); this tokenizer has none") from exc
    return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]


def _overlaps(start: int, end: int, spans: Sequence[tuple[int, int]]) -> bool:
    return end > start and any(start < b and a < end for a, b in spans)


def tokenize(
    rendered: Rendered, tokenizer: Any, image_token_id: int, n_image_tokens: int
) -> tuple[list[int], list[int]]:
    """(input_ids, labels) with each ``<image>`` expanded to ``n_image_tokens`` image tokens (labels masked)."""
    bos = tokenizer.bos_token_id
    ids: list[int] = []
    labels: list[int] = []
    offset = 0
    for k, chunk in enumerate(rendered.text.split(IMAGE_PLACEHOLDER)):
        if k > 0:
            ids += [image_token_id] * n_image_tokens
            labels += [IGNORE_INDEX] * n_image_tokens
        chunk_ids, offsets = _encode(tokenizer, chunk)
        if k > 0 and bos is not None and chunk_ids and chunk_ids[0] == bos:
            chunk_ids, offsets = chunk_ids[1:], offsets[1:]
        for token, (start, end) in zip(chunk_ids, offsets):
            ids.append(token)
            labels.append(token if _overlaps(offset + start, offset + end, rendered.trained) else IGNORE_INDEX)
        offset += len(chunk) + len(IMAGE_PLACEHOLDER)
    return ids, labels


def fit_length(ids: list[int], labels: list[int], max_length: int, image_token_id: int) -> tuple[list[int], list[int]]:
    """Truncate to ``max_length``; a sample whose image tokens or every trained token fall beyond it is bad."""
    if len(ids) <= max_length:
        return ids, labels
    image_positions = [i for i, token in enumerate(ids) if token == image_token_id]
    if image_positions and image_positions[-1] >= max_length:
        raise BadSample(
            "image_tokens_exceed_max_length",
            f"image tokens end at position {image_positions[-1] + 1}, max_length is {max_length}",
        )
    ids, labels = ids[:max_length], labels[:max_length]
    if all(label == IGNORE_INDEX for label in labels):
        raise BadSample("no_answer_within_max_length", f"no assistant token in the first {max_length} tokens")
    return ids, labels


def encode_conversation(
    conversations: Sequence[Mapping[str, Any]],
    has_image: bool,
    template: str,
    tokenizer: Any,
    image_token_id: int,
    n_image_tokens: int,
    max_length: int,
    system: str | None = None,
) -> tuple[list[int], list[int]]:
    """LLaVA-format turns -> (input_ids, labels), normalised, rendered, tokenised and fitted to ``max_length``."""
    pairs = normalise_turns(conversations, has_image)
    rendered = render(template, pairs, has_image, system)
    ids, labels = tokenize(rendered, tokenizer, image_token_id, n_image_tokens)
    return fit_length(ids, labels, max_length, image_token_id)
