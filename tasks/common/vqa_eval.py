"""The VQA answer machinery shared by VQA-v2 and TextVQA: one implementation, quirks included.

Three processors exist in the wild, all built from the same two steps:

- **Official VQA** (``vqaEval.py`` of GT-Vision-Lab/VQA): whitespace cleaning of the prediction and
  the ten human answers; then, *only when the ten cleaned answers are not all the same string*, the
  punctuation step and the digit/article step on the prediction and on every answer.
- **EvalAI** (``EvalAIAnswerProcessor`` in LLaVA's ``m4c_evaluator.py``, copied from MMF): lower-case,
  delete every ``,`` and ``?``, ``'s`` -> `` 's``, strip, whitespace cleaning, then the punctuation
  step (with its own digit-comma test, which can no longer fire because the commas are gone) and the
  digit/article step. LLaVA applies it to VQA-v2 predictions before upload and to both sides in TextVQA.
- **lmms-eval VQA-v2** (v0.7): whitespace cleaning, then EvalAI's punctuation step (its digit-comma
  test can fire here, since nothing deleted the commas) and the digit/article step on the prediction and
  on every answer, *always* (no uniform-answers shortcut, and none of EvalAI's first deletions).
  (Earlier lmms-eval revisions ran the whole EvalAI processor on the prediction and kept vqaEval.py's
  shortcut for the answers; the protocol here is v0.7's, as docs/benchmarks-short-answer.md records.)

The punctuation step, as the official code runs it (:func:`process_punctuation`):

1. For each of 21 characters (``; / [ ] " { } ( ) = + \\ _ - > < @ ` , ? !``), decided on the
   *unmodified* input: if the character appears next to a space (on either side) anywhere, or the input
   contains digit-comma-digit anywhere, the character is deleted everywhere; otherwise every occurrence
   becomes a space. Colon, apostrophe, ``#``, ``$``, ``%``, ``&``, ``*`` are left alone.
2. Periods not followed by a digit are deleted (the lookbehind ``(?!<=\\d)`` is malformed: it is a
   lookahead for the two characters ``<=`` and a digit, so it never protects anything; ``1.5.`` ->
   ``1.5``). Only the first 32 such periods go: ``re.UNICODE`` (32) is passed where ``sub`` takes its count.

The digit/article step (:func:`process_digit_article`): lower-case; split on whitespace; ``none`` and
``zero`` -> ``0``, ``one`` ... ``ten`` -> ``1`` ... ``10``; drop the tokens ``a``, ``an``, ``the``; map
tokens through the contraction table (``dont`` -> ``don't``; its capitalised keys ``Im``, ``Ive``,
``Id've``, ``I'dve`` can never match after lower-casing, and ``somebody'd`` maps *to* ``somebodyd``);
re-join with single spaces. An answer made only of articles becomes the empty string.

Accuracy (:func:`leave_one_out_accuracy`): for each of the ten human answers, count how many of the
*other* answers equal the prediction, take min(1, count/3); the question's score is the mean over the
ten. With k matches among all ten: 0 -> 0, 1 -> 0.3, 2 -> 0.6, 3 -> 0.9, 4 or more -> 1.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Hashable, Mapping, Sequence
from functools import lru_cache
from typing import Any, NamedTuple

from tasks.common.requests import setting_choice

# The official table (ASCII apostrophes), key for key; EvalAI's and lmms-eval's copies are identical.
CONTRACTIONS: dict[str, str] = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't",
    "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's",
    "howd": "how'd", "howll": "how'll", "hows": "how's", "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm",
    "Ive": "I've", "isnt": "isn't", "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've", "itll": "it'll",
    "let's": "let's", "maam": "ma'am", "mightnt": "mightn't", "mightnt've": "mightn't've",
    "mightn'tve": "mightn't've", "mightve": "might've", "mustnt": "mustn't", "mustve": "must've",
    "neednt": "needn't", "notve": "not've", "oclock": "o'clock", "oughtnt": "oughtn't",
    "ow's'at": "'ow's'at", "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at", "shant": "shan't",
    "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's", "shouldve": "should've",
    "shouldnt": "shouldn't", "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've",
    "somebody'd": "somebodyd", "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll", "somebodys": "somebody's", "someoned": "someone'd",
    "someoned've": "someone'd've", "someone'dve": "someone'd've", "someonell": "someone'll",
    "someones": "someone's", "somethingd": "something'd", "somethingd've": "something'd've",
    "something'dve": "something'd've", "somethingll": "something'll", "thats": "that's", "thered": "there'd",
    "thered've": "there'd've", "there'dve": "there'd've", "therere": "there're", "theres": "there's",
    "theyd": "they'd", "theyd've": "they'd've", "they'dve": "they'd've", "theyll": "they'll",
    "theyre": "they're", "theyve": "they've", "twas": "'twas", "wasnt": "wasn't", "wed've": "we'd've",
    "we'dve": "we'd've", "weve": "we've", "werent": "weren't", "whatll": "what'll", "whatre": "what're",
    "whats": "what's", "whatve": "what've", "whens": "when's", "whered": "where'd", "wheres": "where's",
    "whereve": "where've", "whod": "who'd", "whod've": "who'd've", "who'dve": "who'd've", "wholl": "who'll",
    "whos": "who's", "whove": "who've", "whyll": "why'll", "whyre": "why're", "whys": "why's",
    "wont": "won't", "wouldve": "would've", "wouldnt": "wouldn't", "wouldnt've": "wouldn't've",
    "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll", "y'allll": "y'all'll",
    "yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've", "youd": "you'd",
    "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll", "youre": "you're", "youve": "you've",
}  # fmt: skip
NUMBER_MAP: dict[str, str] = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}  # fmt: skip
ARTICLES = ("a", "an", "the")
PUNCTUATION = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!")
# The official pattern, malformed lookbehind and all: in effect "a period not followed by a digit".
PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
PERIOD_LIMIT = int(re.UNICODE)  # 32: the flag the official code passes in sub()'s count position
OFFICIAL_COMMA = re.compile(r"(\d)(,)(\d)")  # vqaEval.py: one comma between two digits
EVALAI_COMMA = re.compile(r"(?<=\d)(,)+(?=\d)")  # EvalAI / lmms-eval: a run of commas between two digits
VQA_ANSWERS = 10
# The normalisers are pure functions of one string and answers repeat massively (ten human answers per question,
# "yes" / "no" / "2" everywhere), so each keeps a cache of distinct strings. HARNESS_SCORING_MEMO=0 turns the
# caches off (bench/scoring.py measures the uncached baseline that way); the results are the same either way.
MEMO_ENABLED = os.environ.get("HARNESS_SCORING_MEMO", "1") != "0"
MEMO_SIZE = 1 << 18  # distinct strings kept per function (least recently used dropped beyond)


def memoised(function: Callable[[str], str]) -> Callable[[str], str]:
    """``function`` with a per-string cache (the function itself when HARNESS_SCORING_MEMO=0)."""
    return lru_cache(maxsize=MEMO_SIZE)(function) if MEMO_ENABLED else function


@memoised
def clean_whitespace(text: str) -> str:
    """Newlines and tabs become spaces, then strip (both scorers' first step)."""
    return text.replace("\n", " ").replace("\t", " ").strip()


def process_punctuation(text: str, comma: re.Pattern[str] = OFFICIAL_COMMA) -> str:
    """The punctuation step; ``comma`` is the digit-comma test (official by default, or :data:`EVALAI_COMMA`).

    Every decision reads the unmodified ``text``; the replacements accumulate on the output.
    """
    digit_comma = comma.search(text) is not None
    out = text
    for p in PUNCTUATION:
        if p + " " in text or " " + p in text or digit_comma:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return PERIOD_STRIP.sub("", out, count=PERIOD_LIMIT)


@memoised
def process_digit_article(text: str) -> str:
    """The digit/article/contraction step (lower-case, number words, articles, contractions, single spaces)."""
    words = []
    for word in text.lower().split():
        word = NUMBER_MAP.get(word, word)
        if word not in ARTICLES:
            words.append(word)
    return " ".join(CONTRACTIONS.get(word, word) for word in words)


@memoised
def normalize_official(text: str) -> str:
    """vqaEval.py's two normalisation steps (applied only when the human answers differ)."""
    return process_digit_article(process_punctuation(text))


@memoised
def evalai_steps(text: str) -> str:
    """EvalAI's punctuation step (its digit-comma test) and the digit/article step, nothing before them.

    What lmms-eval's VQA-v2 scorer applies to predictions and answers (after whitespace cleaning).
    """
    return process_digit_article(process_punctuation(text, EVALAI_COMMA))


@memoised
def evalai_answer(text: str) -> str:
    """LLaVA's / MMF's ``EvalAIAnswerProcessor()(text)``.

    Lower-case; delete every ``,`` and ``?``; ``'s`` -> `` 's``; strip; whitespace cleaning; then
    :func:`evalai_steps`. Its digit-comma test cannot fire, because the commas are already gone.
    """
    text = text.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
    return evalai_steps(clean_whitespace(text))


PREDICTION_PROCESSORS: dict[str, Callable[[str], str]] = {"evalai": evalai_answer, "none": lambda text: text}


def prediction_processor(settings: Mapping[str, Any]) -> Callable[[str], str]:
    """The protocol's ``prediction_processor`` (default ``"evalai"``: what LLaVA's converters upload; ``"none"``:
    the answer as the model wrote it); a bad name is a UsageError listing the choices."""
    name = setting_choice(settings, "prediction_processor", tuple(PREDICTION_PROCESSORS), "evalai")
    return PREDICTION_PROCESSORS[name]


def leave_one_out_accuracy(
    prediction: str, answers: Sequence[str], records: Sequence[Hashable] | None = None
) -> float:
    """Mean over the answers of min(1, matches among the others / 3).

    ``records`` (one per answer) decides which answers are "the others": those whose record differs
    from the current one. vqaEval.py compares whole answer dicts (answer, confidence, answer_id), so
    two identical dicts leave each other out as well; without ``records`` each answer leaves out only
    itself (TextVQA's evaluator pairs answers with their index).
    """
    if not answers:
        return 0.0
    keys: Sequence[Hashable] = records if records is not None else range(len(answers))
    if len(keys) != len(answers):
        raise ValueError("records must pair one to one with answers")
    if not MEMO_ENABLED:
        return leave_one_out_reference(prediction, answers, keys)
    # matches among the others of answer i = all matches - matches whose key equals key i (O(n), not O(n^2))
    matching: dict[Hashable, int] = {}
    for key, answer in zip(keys, answers):
        if answer == prediction:
            matching[key] = matching.get(key, 0) + 1
    if not matching:
        return 0.0
    total = sum(matching.values())
    return _mean_of_capped(tuple(total - matching.get(key, 0) for key in keys))


def leave_one_out_reference(prediction: str, answers: Sequence[str], keys: Sequence[Hashable]) -> float:
    """The official loop as written (quadratic in the answers): the uncached baseline and the tests' reference."""
    total = 0.0
    for current in keys:
        matches = sum(1 for key, answer in zip(keys, answers) if key != current and answer == prediction)
        total += min(1.0, matches / 3)
    return total / len(answers)


@lru_cache(maxsize=4096)
def _mean_of_capped(counts: tuple[int, ...]) -> float:
    """The mean of min(1, count/3), summed in answer order (the float additions of the official loop)."""
    total = 0.0
    for count in counts:
        total += min(1.0, count / 3)
    return total / len(counts)


class Scored(NamedTuple):
    """One question scored: the accuracy, and the prediction and answers as they were compared (a named
    tuple: built once per question, 214k times on VQAv2 val, at under half a frozen dataclass's cost)."""

    accuracy: float
    prediction: str
    answers: tuple[str, ...]
    normalized: bool  # whether the normalisation steps ran


def official_vqa_score(
    prediction: str, answers: Sequence[str], records: Sequence[Hashable] | None = None
) -> Scored:
    """One question as vqaEval.py's ``evaluate`` scores it (``records``: see :func:`leave_one_out_accuracy`).

    ``records`` should describe each answer apart from its text, e.g. (answer_confidence, answer_id);
    the text is added here, after processing, as the official dict comparison sees it.
    """
    cleaned, normalize = _official_answers(tuple(answers))
    pred = clean_whitespace(prediction)
    if normalize:
        pred = normalize_official(pred)
    if MEMO_ENABLED and (records is None or len(set(records)) == len(records) == len(cleaned)):
        # distinct records make every (answer, record) key distinct: each answer leaves out only itself
        return Scored(_distinct_keys_accuracy(pred, cleaned), pred, cleaned, normalize)
    keys = None if records is None else [(a, r) for a, r in zip(cleaned, records, strict=True)]
    return Scored(leave_one_out_accuracy(pred, cleaned, keys), pred, cleaned, normalize)


@lru_cache(maxsize=MEMO_SIZE)
def _distinct_keys_accuracy(prediction: str, answers: tuple[str, ...]) -> float:
    """:func:`leave_one_out_accuracy` when no two answers share a record (the usual case), per distinct input."""
    return leave_one_out_accuracy(prediction, answers)


def _official_answers_uncached(answers: tuple[str, ...]) -> tuple[tuple[str, ...], bool]:
    """The answers as vqaEval.py compares them, and whether it normalised them (they were not all the same)."""
    cleaned = [clean_whitespace(a) for a in answers]
    normalize = len(set(cleaned)) > 1
    if normalize:
        cleaned = [normalize_official(a) for a in cleaned]
    return tuple(cleaned), normalize


_official_answers = (
    lru_cache(maxsize=MEMO_SIZE)(_official_answers_uncached) if MEMO_ENABLED else _official_answers_uncached
)


def lmms_eval_vqa_score(
    prediction: str, answers: Sequence[str], records: Sequence[Hashable] | None = None
) -> Scored:
    """One question as lmms-eval's VQA-v2 ``process_results`` scores it (v0.7).

    The framework strips the generation; then whitespace cleaning and :func:`evalai_steps` on the
    prediction and on every answer, always.
    """
    cleaned = tuple([evalai_steps(clean_whitespace(a)) for a in answers])
    pred = evalai_steps(clean_whitespace(prediction.strip()))
    keys = None if records is None else [(a, r) for a, r in zip(cleaned, records, strict=True)]
    return Scored(leave_one_out_accuracy(pred, cleaned, keys), pred, cleaned, True)


def textvqa_score(prediction: str, answers: Sequence[str], require_ten: bool = True) -> Scored:
    """One question as ``TextVQAAccuracyEvaluator`` (LLaVA / MMF) scores it.

    EvalAI processing of the prediction and of every answer (always); the leave-one-out score of the
    prediction when it equals one of the processed answers, else 0. ``require_ten``: the official
    evaluator asserts exactly ten answers (lmms-eval does not); a ValueError here.
    """
    if require_ten and len(answers) != VQA_ANSWERS:
        raise ValueError(f"expected {VQA_ANSWERS} answers, got {len(answers)}")
    processed = [evalai_answer(a) for a in answers]
    pred = evalai_answer(prediction)
    accuracy = leave_one_out_accuracy(pred, processed) if pred in processed else 0.0
    return Scored(accuracy, pred, tuple(processed), True)
