"""Answers to open demo questions in the VQA style: a canonical answer, its variants, wrong ones, ten per question.

The ten answers vary as people's do: the canonical answer, spellings the VQA normalisation maps to it and
sometimes a wrong one; some questions get ten identical answers (where the official VQA scorer compares
without normalising).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from tasks.demo.scenes import NUMBER_WORDS

UNIFORM_PROBABILITY = 0.25  # share of questions whose ten answers are identical


@dataclass(frozen=True)
class AnswerSpec:
    """A canonical answer, spellings that normalise to it, and wrong answers people give."""

    answer: str
    variants: tuple[str, ...]
    wrong: tuple[str, ...]


def number_spellings(n: int) -> tuple[str, ...]:
    """Spellings of ``n`` that normalise to its digits: the word, capitalised, and the digits with a space."""
    return NUMBER_WORDS[n], NUMBER_WORDS[n].capitalize(), f"{n} "


def human_answers(rng: random.Random, spec: AnswerSpec) -> list[str]:
    """Ten answers: all canonical (sometimes), else 5-8 canonical, variants, maybe one or two wrong, shuffled.

    The canonical answer always has at least five votes, so it scores 1 under every VQA scorer.
    """
    if rng.random() < UNIFORM_PROBABILITY or not (spec.variants or spec.wrong):
        return [spec.answer] * 10
    n_canonical = rng.randint(5, 8)
    n_wrong = min(rng.randint(0, 2), 10 - n_canonical) if spec.wrong else 0
    rest = 10 - n_canonical - n_wrong
    pool = list(spec.variants) or [spec.answer]
    answers = [spec.answer] * n_canonical + [rng.choice(pool) for _ in range(rest)]
    answers += [rng.choice(list(spec.wrong)) for _ in range(n_wrong)]
    rng.shuffle(answers)
    return answers
