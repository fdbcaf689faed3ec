"""A sampler that groups batches by modality (image or text-only) and by length, as LLaVA's trainer does.

Indices of each modality are shuffled and cut into mega-batches of ``batch_size * world_size`` samples
(times ``group_factor``); each mega-batch is sorted by length, longest first, and cut into global batches.
The global batches of both modalities are shuffled together, and the two incomplete ones left over go last.
With HF Trainer / accelerate each global batch is dealt out as one per-device batch per rank.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch


class ModalityLengthSampler(torch.utils.data.Sampler[int]):
    """Per-epoch order of dataset indices; ``lengths`` are positive for image samples, negative for text-only."""

    def __init__(
        self, lengths: Sequence[int], batch_size: int, world_size: int = 1, seed: int = 0, group_factor: int = 1
    ) -> None:
        self.lengths = list(lengths)
        self.global_batch = batch_size * world_size
        self.group = self.global_batch * group_factor
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def _batches(self, indices: list[int], generator: torch.Generator) -> tuple[list[list[int]], list[int]]:
        """Full global batches of one modality, and the incomplete rest."""
        order = [indices[k] for k in torch.randperm(len(indices), generator=generator).tolist()]
        batches: list[list[int]] = []
        for start in range(0, len(order), self.group):
            group = sorted(order[start : start + self.group], key=lambda i: -abs(self.lengths[i]))
            batches += [group[k : k + self.global_batch] for k in range(0, len(group), self.global_batch)]
        rest = batches.pop() if batches and len(batches[-1]) < self.global_batch else []
        return batches, rest

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        images = [i for i, n in enumerate(self.lengths) if n > 0]
        texts = [i for i, n in enumerate(self.lengths) if n <= 0]
        image_batches, image_rest = self._batches(images, generator)
        text_batches, text_rest = self._batches(texts, generator)
        batches = image_batches + text_batches
        order = torch.randperm(len(batches), generator=generator).tolist()
        for k in order:
            yield from batches[k]
        yield from image_rest + text_rest
