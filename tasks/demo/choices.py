"""Options of multiple-choice demo questions: the right option among a few wrong ones, shuffled."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Choices:
    """The options of a multiple-choice question and the position of the right one."""

    options: tuple[str, ...]
    answer: int

    @classmethod
    def listed(cls, options: Sequence[str], right: str) -> Choices:
        """The options in the order given, ``right`` among them."""
        return cls(tuple(options), list(options).index(right))


def shuffled_choices(rng: random.Random, right: str, wrong: Sequence[str], most_wrong: int) -> Choices:
    """``right`` and 1 to ``most_wrong`` of the ``wrong`` options (no more than there are), in random order."""
    picked = [right, *rng.sample(list(wrong), rng.randint(1, min(most_wrong, len(wrong))))]
    rng.shuffle(picked)
    return Choices(tuple(picked), picked.index(right))
