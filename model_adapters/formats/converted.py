"""The in-memory result of reading any TinyLLaVA checkpoint, and the checks every converter shares.

A :class:`Converted` holds what transformers' ``LlavaForConditionalGeneration`` needs: its config, the
weights of its three parts under their native names, the tokenizer, image processor settings, the chat
template and, when plain Llava cannot express it, the lm_head bias.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from harness.errors import HarnessError
from model_adapters.formats.tensors import Tensors

IMAGE_TOKEN = "<image>"
# Bias of output rows the original model does not have (the added <image> row, rows its loader cut off):
# they can never win a greedy step and get probability 0 when sampling.
MASKED_LOGIT = torch.finfo(torch.float32).min


@dataclass
class Part:
    """Tensors of one model part under the names its native module uses, with their names in the source."""

    tensors: Tensors = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)

    @classmethod
    def take(cls, source: Mapping[str, torch.Tensor], prefix: str, label: str = "") -> Part:
        """The tensors of ``source`` under ``prefix`` (removed); ``label`` says which file they came from."""
        part = cls()
        for key, value in source.items():
            if key.startswith(prefix):
                part.put(key[len(prefix) :], value, f"{label}{key}")
        return part

    def put(self, key: str, value: torch.Tensor, origin: str) -> None:
        self.tensors[key] = value
        self.origin[key] = origin

    def pop(self, key: str) -> torch.Tensor | None:
        self.origin.pop(key, None)
        return self.tensors.pop(key, None)

    def update(self, other: Part) -> None:
        self.tensors.update(other.tensors)
        self.origin.update(other.origin)

    def name(self, key: str) -> str:
        return self.origin.get(key, key)

    def renamed(self, rename: Mapping[str, str]) -> Part:
        """A copy with key prefixes replaced (first matching entry of ``rename`` wins)."""
        out = Part()
        for key, value in self.tensors.items():
            new = key
            for old, replacement in rename.items():
                if key.startswith(old):
                    new = replacement + key[len(old) :]
                    break
            out.put(new, value, self.name(key))
        return out


def check_part(part: Part, expected: Mapping[str, torch.Size], what: str, path: Path) -> None:
    """HarnessError unless ``part`` has exactly the ``expected`` tensor names and shapes."""
    for key, shape in expected.items():
        if key in part.tensors and tuple(part.tensors[key].shape) != tuple(shape):
            raise HarnessError(
                f"checkpoint {path}: tensor {part.name(key)} has shape {list(part.tensors[key].shape)} "
                f"but the config implies {list(shape)}"
            )
    missing = sorted(set(expected) - set(part.tensors))
    if missing:
        shown = ", ".join(missing[:4])
        raise HarnessError(
            f"checkpoint {path}: {len(missing)} {what} tensor(s) that the config implies are missing, e.g. {shown}"
        )
    extra = sorted(set(part.tensors) - set(expected))
    if extra:
        shown = ", ".join(part.name(k) for k in extra[:4])
        raise HarnessError(
            f"checkpoint {path}: {len(extra)} tensor(s) have no place in the {what} the config describes, e.g. {shown}"
        )


def module_shapes(module: torch.nn.Module) -> dict[str, torch.Size]:
    """Names and shapes of a module's state (works on meta-device modules)."""
    return {key: value.shape for key, value in module.state_dict().items()}


def align_names(part: Part, expected: Mapping[str, Any], prefix: str) -> Part:
    """Add or remove ``prefix`` so that the names follow ``expected`` (e.g. ``vision_model.`` across versions)."""
    want = any(k.startswith(prefix) for k in expected)
    have = any(k.startswith(prefix) for k in part.tensors)
    if want == have:
        return part
    return part.renamed({prefix: ""}) if have else Part(
        {prefix + k: v for k, v in part.tensors.items()}, {prefix + k: part.name(k) for k in part.tensors}
    )


@dataclass
class Vocabulary:
    """How the output vocabulary was fitted: rows, the <image> id, the lm_head bias (None: not needed) and
    how many of the rows the checkpoint stores (the rest were added for ``<image>``)."""

    rows: int
    image_token_id: int
    bias: torch.Tensor | None
    stored: int


def image_token_id(tokenizer: Any) -> int:
    """The id of ``<image>``, added to the tokenizer as a special token when it lacks one."""
    if IMAGE_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_tokens([IMAGE_TOKEN], special_tokens=True)
    return int(tokenizer.convert_tokens_to_ids(IMAGE_TOKEN))


def fit_vocabulary(text: Part, tied: bool, live: int, image_id: int, bias: torch.Tensor | None) -> Vocabulary:
    """Keep every embedding and LM-head row the checkpoint stores, give ``image_id`` a row, mask rows past ``live``.

    A padded vocabulary (phi-2: 51200 rows for 50295 tokens) keeps all its rows with their weights, so the
    logits over all of the checkpoint's rows are the original's. ``<image>`` has the tokenizer's next id:
    the first padding row where the checkpoint has one (its weights kept, so that row's logit is still the
    original's), else one appended row with zero weights. ``live`` is the number of rows the original's
    loader keeps (legacy: ``len(tokenizer)``); rows from ``live`` on get a masked bias, so the tinyllava
    adapter never picks them (plain transformers, which has no head bias, gives them their weights' logits).
    """
    stored = int(text.tensors["model.embed_tokens.weight"].shape[0])
    rows = max(stored, image_id + 1)
    names = ["model.embed_tokens.weight"] + ([] if tied else ["lm_head.weight"])
    for name in names:
        old = text.tensors[name]
        if old.shape[0] == rows:
            continue
        new = old.new_zeros((rows, *old.shape[1:]))
        new[: old.shape[0]] = old
        text.tensors[name] = new
    if rows <= live and bias is None:
        return Vocabulary(rows, image_id, None, stored)
    full = torch.zeros(rows, dtype=torch.float32)
    if bias is not None:
        keep = min(live, bias.shape[0])
        full[:keep] = bias[:keep].float()
    full[live:] = MASKED_LOGIT
    return Vocabulary(rows, image_id, full, stored)


@dataclass
class Converted:
    """A checkpoint rewritten for ``LlavaForConditionalGeneration`` (see the module docstring)."""

    format: str  # one of formats.FORMATS
    config: Any  # LlavaConfig
    text: Part  # native causal-LM names: model.*, lm_head.weight (absent when tied)
    vision: Part  # names of the installed transformers' vision model
    projector: Part  # linear_1.*, linear_2.*
    tokenizer: Any
    image_processor: dict[str, Any]
    template: str | None
    image_aspect_ratio: str
    sources: dict[str, Path]  # label -> directory whose files define the model
    lm_head_bias: torch.Tensor | None = None
    live_vocab: int = 0  # output rows the original's loader keeps (the rest are masked)
    stored_vocab: int = 0  # rows the checkpoint stores (all kept; more only for an appended <image> row)
    notes: list[str] = field(default_factory=list)
