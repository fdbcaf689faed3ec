"""The fast paths of the VQA scoring (issue 19): the same numbers as the official loops, and the bench runs."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from tasks.common import vqa_eval
from tasks.common.vqa_eval import leave_one_out_accuracy, leave_one_out_reference, official_vqa_score

REPO = Path(__file__).resolve().parents[2]
WORDS = ("yes", "no", "2", "two", "Yes", "a dog", "dog", "dog.", "red, white", "1,000", "")


def _official_reference(prediction, answers, records):
    """vqaEval.py's evaluate for one question, written as the official loop (no caches, no shortcuts)."""
    cleaned = [a.replace("\n", " ").replace("\t", " ").strip() for a in answers]
    pred = cleaned_pred = prediction.replace("\n", " ").replace("\t", " ").strip()
    if len(set(cleaned)) > 1:
        cleaned = [vqa_eval.process_digit_article(vqa_eval.process_punctuation(a)) for a in cleaned]
        pred = vqa_eval.process_digit_article(vqa_eval.process_punctuation(cleaned_pred))
    keys = list(range(len(answers))) if records is None else [(a, r) for a, r in zip(cleaned, records, strict=True)]
    return leave_one_out_reference(pred, cleaned, keys)


def test_leave_one_out_matches_the_official_loop_bit_for_bit():
    rng = random.Random(19)
    for _ in range(3000):
        n = rng.choice((1, 3, 9, 10, 10, 10))
        answers = [rng.choice(WORDS[:5]) for _ in range(n)]
        prediction = rng.choice(WORDS[:5])
        records = [(rng.choice("ab"), rng.randint(1, 3)) for _ in range(n)] if rng.random() < 0.5 else None
        keys = range(n) if records is None else records
        assert leave_one_out_accuracy(prediction, answers, records) == leave_one_out_reference(
            prediction, answers, keys
        )


def test_official_score_with_caches_equals_the_uncached_loop():
    rng = random.Random(7)
    for _ in range(3000):
        answers = [rng.choice(WORDS) for _ in range(10)]
        if rng.random() < 0.3:
            answers = [answers[0]] * 10
        prediction = rng.choice(WORDS)
        distinct = rng.random() < 0.7
        records = [("yes", i if distinct else rng.randint(1, 4)) for i in range(10)] if rng.random() < 0.9 else None
        assert official_vqa_score(prediction, answers, records).accuracy == _official_reference(
            prediction, answers, records
        )


@pytest.mark.slow
def test_scoring_bench_prints_its_table():
    command = [sys.executable, "bench/scoring.py", "--scale", "0.001", "--tasks", "vqav2_val,gqa", "--repeats", "2"]
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "scorer samples/s" in proc.stdout and "best of 2 runs each" in proc.stdout
    assert any(line.startswith("vqav2_val") for line in proc.stdout.splitlines())
    assert any(line.startswith("gqa") for line in proc.stdout.splitlines())
