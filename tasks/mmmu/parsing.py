"""MMMU's answer parsing and matching, as ``mmmu/utils/eval_utils.py`` of MMMU-Benchmark/MMMU (bb0b95a) does it.

Multiple choice (``parse_multi_choice_response``): the response loses leading and trailing ``, . ! ? ; : '``
(stripped one character kind after the other, in that order) and is padded with a space on each side.
Candidates are, in the first of these steps that finds any: letters written ``(A)``; letters standing
alone (`` A ``); and, only for responses of more than five words, options whose text occurs in the
response (case-insensitive). With several candidates the one mentioned last wins (its last position;
the first candidate on a tie); with none, a letter is drawn with ``rng.choice(all_choices)``.

lmms-eval's copy (``mmmu_mcq_utils.parse_mmmu_multi_choice_response``) differs in the second step: a
letter followed by a space (``A `` anywhere, so the ``A`` that ends a word counts), then, when that finds
none, a letter followed by a full stop; the last-mention rule still searches `` A ``.

Open questions (``parse_open_response``): the response, stripped, without trailing full stops and
lower-cased, is split into sentences (at ``. `` before a capital, which no longer occurs after
lower-casing, and at newlines); from each sentence the shortest tail after one of the key phrases
(``could be``, ``so``, ``is``, ``thus``, ``therefore``, ``final``, ``answer``, ``result``, and ``=`` in the last
sentence) is kept; without any, the whole response. The numbers in them are added; every item is
normalised (``normalize_str``: a number becomes a float rounded to 2 decimals, text is lower-cased and a
one-character text becomes the pair `` x`` / ``x ``). ``eval_open`` is right when a normalised gold
number equals a predicted number, or a normalised gold text is a substring of a predicted text.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from typing import Literal

Parsed = list[str | float]  # a normalised open-question prediction
Style = Literal["mmmu", "lmms-eval"]

EDGE_CHARACTERS = (",", ".", "!", "?", ";", ":", "'")
KEY_PHRASES = ("could be ", "so ", "is ", "thus ", "therefore ", "final ", "answer ", "result ")
TRIVIAL = {":", ",", ".", "!", "?", ";", "'"}
COMMA_NUMBER = re.compile(r"-?\b\d{1,3}(?:,\d{3})+\b")
SCIENTIFIC_NUMBER = re.compile(r"-?\d+(?:\.\d+)?[eE][+-]?\d+")
PLAIN_NUMBER = re.compile(r"-?(?:\d+\.\d+|\.\d+|\d+\b)(?![eE][+-]?\d+)(?![,\d])")
SENTENCE_BREAK = re.compile(r"\.\s(?=[A-Z])|\n")


def _last_of(candidates: Sequence[str], positions: Sequence[int]) -> str:
    """The candidate with the largest position; the first such on a tie (numpy's argmax)."""
    best = 0
    for i, position in enumerate(positions):
        if position > positions[best]:
            best = i
    return candidates[best]


def parse_multi_choice(
    response: str,
    all_choices: Sequence[str],
    index2ans: Mapping[str, str],
    rng: random.Random,
    style: Style = "mmmu",
) -> str:
    """The letter MMMU's parser reads from ``response`` (``rng`` draws one when nothing is found)."""
    for char in EDGE_CHARACTERS:
        response = response.strip(char)
    padded = f" {response} "
    candidates = [c for c in all_choices if f"({c})" in padded]
    bracketed = bool(candidates)
    by_text = False
    if not candidates:
        if style == "mmmu":
            candidates = [c for c in all_choices if f" {c} " in padded]
        else:
            candidates = [c for c in all_choices if f"{c} " in padded]
            if not candidates:
                candidates = [c for c in all_choices if f"{c}." in padded]
    if not candidates and len(padded.split()) > 5:
        lowered = padded.lower()
        candidates = [letter for letter, text in index2ans.items() if text.lower() in lowered]
        by_text = bool(candidates)
    if not candidates:
        return rng.choice(list(all_choices))
    if len(candidates) == 1:
        return candidates[0]
    if by_text:
        lowered = padded.lower()
        positions = [lowered.rfind(index2ans[c].lower()) for c in candidates]
    elif bracketed:
        positions = [padded.rfind(f"({c})") for c in candidates]
    else:
        positions = [padded.rfind(f" {c} ") for c in candidates]
    return _last_of(candidates, positions)


def is_number(text: str) -> bool:
    """``check_is_number``: ``float()`` accepts the text once its commas are removed."""
    try:
        float(text.replace(",", ""))
    except ValueError:
        return False
    return True


def normalize(text: str) -> Parsed:
    """``normalize_str``: a number as a float rounded to 2 decimals; text lower-cased, one character padded."""
    text = text.strip()
    if is_number(text):
        return [round(float(text.replace(",", "")), 2)]
    text = text.lower()
    if len(text) == 1:
        return [" " + text, text + " "]
    return [text]


def extract_numbers(text: str) -> list[str]:
    """``extract_numbers``: comma-grouped numbers, then scientific notation, then plain numbers."""
    return COMMA_NUMBER.findall(text) + SCIENTIFIC_NUMBER.findall(text) + PLAIN_NUMBER.findall(text)


def key_parts(response: str) -> list[str]:
    """``get_key_subresponses``: the shortest tail after a key phrase of each sentence, else the response."""
    response = response.strip().strip(".").lower()
    sentences = SENTENCE_BREAK.split(response)
    phrases = list(KEY_PHRASES)
    found: list[str] = []
    for index, sentence in enumerate(sentences):
        if index == len(sentences) - 1:
            phrases.append("=")
        shortest: str | None = None
        for phrase in phrases:
            if phrase in sentence:
                tail = sentence.split(phrase)[-1].strip()
                if not shortest or len(tail) < len(shortest):
                    shortest = tail
        if shortest and shortest.strip() not in TRIVIAL:
            found.append(shortest)
    return found or [response]


def parse_open(response: str) -> Parsed:
    """``parse_open_response``: the normalised key parts and their numbers, each once (in a stable order;
    the official set's order varies and does not matter to ``eval_open``)."""
    parts = key_parts(response)
    items: list[str] = parts + [n for part in parts for n in extract_numbers(part)]
    normalised: Parsed = [value for item in items for value in normalize(item)]
    unique = list(dict.fromkeys(normalised))
    return sorted(unique, key=lambda v: (isinstance(v, str), str(v)))


def gold_forms(gold: str | Sequence[str]) -> Parsed:
    """The normalised gold answers (``eval_open``'s ``norm_answers``)."""
    answers = [gold] if isinstance(gold, str) else list(gold)
    return [value for answer in answers for value in normalize(answer)]


def open_correct(gold: str | Sequence[str], predicted: Parsed) -> bool:
    """``eval_open``: a predicted number equal to a gold number, or a gold text inside a predicted text."""
    forms = gold_forms(gold)
    for pred in predicted:
        if isinstance(pred, str):
            if any(isinstance(form, str) and form in pred for form in forms):
                return True
        elif pred in forms:
            return True
    return False


def choice_correct(gold: str | Sequence[str], predicted: object) -> bool:
    """``eval_multi_choice``: the prediction equals the gold letter (or one of a list of them)."""
    if isinstance(gold, str):
        return gold == predicted
    return any(answer == predicted for answer in gold)
