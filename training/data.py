"""LLaVA-format training data: JSON records + an image folder -> token ids, labels and pixel values.

A record is ``{"id", "image"?, "conversations": [{"from": "human"|"gpt", "value"}, ...]}`` (a JSON list, or one
record per line). Text-only records (no ``image``) carry no pixel values: the collator stacks only real
images, and Llava splices features only where image tokens are. (The originals give them a zero image
instead; a batch without any image runs the tower on a blank image at zero loss weight, see ``train``, so every
rank still runs the same modules under ZeRO-3.)

Bad samples never stop an epoch: a record without an assistant turn, with a missing or unreadable image,
or whose image tokens do not fit ``max_length`` is counted, reported and replaced by the next good one; the
:class:`SkipLog` keeps the counts (in a JSONL file, so DataLoader workers and ranks add to one summary).
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from model_adapters.tinyllava import expand_to_square
from training.conversation import IGNORE_INDEX, BadSample, encode_conversation, normalise_turns

MESSAGES_PER_REASON = 5  # skip messages printed per reason and process; the rest only counted


def load_records(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The records of a LLaVA JSON (list) or JSONL file."""
    text = Path(path).read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        data = json.loads(text)
    else:
        data = [json.loads(line) for line in text.splitlines() if line.strip()]
    if not all(isinstance(r, dict) for r in data):
        raise ValueError(f"{path}: every record must be a JSON object")
    return data


class SkipLog:
    """Skipped samples: a message for the first few of each reason, and counts for the summary.

    Entries are appended to ``path`` (one JSON line each) when given, so processes can share it.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path else None
        self.counts: Counter[str] = Counter()
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def skip(self, sample_id: str, problem: BadSample) -> None:
        self.counts[problem.reason] += 1
        if self.counts[problem.reason] <= MESSAGES_PER_REASON:
            print(f"skipped sample {sample_id}: {problem}", file=sys.stderr)
        if self.path is not None:
            line = json.dumps({"id": sample_id, "reason": problem.reason, "detail": problem.detail}) + "\n"
            with self.path.open("a", encoding="utf-8") as f:
                f.write(line)

    def totals(self) -> Counter[str]:
        """Samples per reason: from the shared file when there is one (each sample once), else this process's."""
        if self.path is None or not self.path.is_file():
            return Counter(self.counts)
        entries = [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return Counter(reason for _, reason in {(e["id"], e["reason"]) for e in entries})

    def summary(self) -> str:
        totals = self.totals()
        if not totals:
            return "skipped samples: none"
        parts = ", ".join(f"{reason} {n}" for reason, n in sorted(totals.items()))
        return f"skipped samples: {sum(totals.values())} ({parts})"


@dataclass(frozen=True)
class DataSettings:
    """What turns a record into tensors."""

    template: str
    max_length: int
    image_token_id: int
    n_image_tokens: int
    image_folder: Path | None = None
    pad_to_square: bool = False


def sample_id(record: Mapping[str, Any], index: int) -> str:
    return str(record.get("id", f"#{index}"))


class LlavaDataset(torch.utils.data.Dataset):
    """Records checked up front (conversation shape, image file present); tokenised and loaded lazily."""

    def __init__(
        self,
        records: Sequence[Mapping[str, Any]],
        tokenizer: Any,
        image_processor: Any,
        settings: DataSettings,
        skip_log: SkipLog | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.settings = settings
        self.skip_log = skip_log or SkipLog()
        self.records = [r for i, r in enumerate(records) if self._precheck(r, i)]
        self._bad: set[int] = set()  # positions found bad while loading (in this process)
        if not self.records:
            raise ValueError(f"no usable training samples ({self.skip_log.summary()})")

    def _image_path(self, record: Mapping[str, Any]) -> Path:
        folder = self.settings.image_folder
        return Path(folder) / str(record["image"]) if folder is not None else Path(str(record["image"]))

    def _precheck(self, record: Mapping[str, Any], index: int) -> bool:
        try:
            has_image = bool(record.get("image"))
            normalise_turns(record.get("conversations") or [], has_image)
            if has_image and not self._image_path(record).is_file():
                raise BadSample("missing_image", str(self._image_path(record)))
        except BadSample as problem:
            self.skip_log.skip(sample_id(record, index), problem)
            return False
        return True

    def __len__(self) -> int:
        return len(self.records)

    @property
    def modality_lengths(self) -> list[int]:
        """A length estimate per record (words + image tokens), negative for text-only records (as LLaVA)."""
        out = []
        for record in self.records:
            words = sum(len(str(t.get("value", "")).split()) for t in record["conversations"])
            out.append(words + self.settings.n_image_tokens if record.get("image") else -words)
        return out

    def __getitem__(self, index: int) -> dict[str, Any]:
        """The sample at ``index``, or the next good one after it when it turns out bad (logged)."""
        for step in range(len(self.records)):
            position = (index + step) % len(self.records)
            if position in self._bad:
                continue
            record = self.records[position]
            try:
                return self.encode(record)
            except BadSample as problem:
                self._bad.add(position)
                self.skip_log.skip(sample_id(record, position), problem)
        raise RuntimeError(f"every training sample is bad ({self.skip_log.summary()})")

    def encode(self, record: Mapping[str, Any]) -> dict[str, Any]:
        s = self.settings
        has_image = bool(record.get("image"))
        ids, labels = encode_conversation(
            record["conversations"], has_image, s.template, self.tokenizer, s.image_token_id, s.n_image_tokens,
            s.max_length,
        )
        return {
            "input_ids": torch.tensor(ids, dtype=torch.long),
            "labels": torch.tensor(labels, dtype=torch.long),
            "pixel_values": self.pixel_values(self._image_path(record)) if has_image else None,
        }

    def pixel_values(self, path: Path) -> torch.Tensor:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as raw:
                image = raw.convert("RGB")
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise BadSample("unreadable_image", f"{path}: {exc}") from exc
        if self.settings.pad_to_square:
            background = tuple(int(x * 255) for x in self.image_processor.image_mean)
            image = expand_to_square(image, background)
        pixels = self.image_processor([image], return_tensors="pt")["pixel_values"]
        return torch.as_tensor(pixels[0])


@dataclass
class LlavaCollator:
    """Right-pads ids (``pad_id``) and labels (-100); the attention mask comes from the lengths, so real EOS
    tokens stay attended even when pad == EOS; images are stacked (text-only samples add none)."""

    pad_id: int

    def __call__(self, items: Sequence[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
        width = max(len(item["input_ids"]) for item in items)
        ids = torch.full((len(items), width), self.pad_id, dtype=torch.long)
        labels = torch.full((len(items), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(items), width), dtype=torch.long)
        for row, item in enumerate(items):
            n = len(item["input_ids"])
            ids[row, :n] = item["input_ids"]
            labels[row, :n] = item["labels"]
            mask[row, :n] = 1
        batch = {"input_ids": ids, "labels": labels, "attention_mask": mask}
        images = [item["pixel_values"] for item in items if item["pixel_values"] is not None]
        if images:
            batch["pixel_values"] = torch.stack(images)
        return batch
