"""Multiple-choice letter extraction: VLMEvalKit's heuristics (early 2024) and lmms-eval's MMBench matcher.

VLMEvalKit (open-compass/VLMEvalKit @ 996dc62, 2024-02-14, ``can_infer``), as MMBench's official
evaluation reads a prediction before (optionally) asking a judge:

1. ``can_infer_option``: a prediction containing the API-failure marker matches nothing; one
   containing a refusal phrase (``REFUSALS``) is the none-of-these letter ``Z``. Otherwise every
   character of ``. ( ) [ ] , : ; ! * # { }`` becomes a space and the text is split on whitespace;
   exactly one choice letter among the tokens gives that letter, no choice letter but a lone ``Z``
   token gives ``Z``, anything else matches nothing. (VLMEvalKit skips a prediction with an "A"
   token and more than 3 tokens only when its ``VERBOSE`` environment variable is set; it is not
   set for the published numbers, so that branch is not reproduced.)
2. ``can_infer_text``: exactly one option text (lower-cased) occurring inside the lower-cased
   prediction gives that option's letter.
3. ``can_infer``: the first rule, else the second.

lmms-eval (EvolvingLMMs-Lab/lmms-eval, ``tasks/mmbench/mmbench_evals.py``) has its own matcher:
letters ``A``-``E`` (``E`` is its none-of-these letter, there is no ``Z``), tokens are the
whitespace-split prediction with no punctuation removed, a prediction with an ``A`` token and more
than 3 tokens skips the bare-token rule (``A`` may be an article), then one letter wrapped in one
of a fixed list of prefixes/suffixes (``B.``, ``(B)``, ``:B`` ...) is taken; the option-text rule
is the same as VLMEvalKit's.

Every function returns the letter, or None where the original returns False.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

API_FAILURE = "Failed to obtain answer via API"
# Replies VLMEvalKit reads as "none of the options" (letter Z).
REFUSALS = (
    "Sorry, I can't help with images of people yet.",
    "I can't process this file.",
    "I'm sorry, but without the image provided",
    "Cannot determine the answer",
)
NONE_LETTER = "Z"
PUNCTUATION = ".()[],:;!*#{}"  # turned into spaces before tokenising

LMMS_LETTERS = "ABCDE"
LMMS_NONE_LETTER = "E"
# (prefix, suffix) pairs lmms-eval tries, in order, around a letter token.
LMMS_AFFIXES = (
    ("", "."),
    ("", ","),
    ("", ":"),
    ("", ")"),
    ("", ")."),
    ("(", ")"),
    ("(", ")."),
    (":", ""),
    (":", ","),
    (":", "."),
    (":", ")"),
    (":", ")."),
)


def letter_tokens(answer: str) -> list[str]:
    """VLMEvalKit's tokens: punctuation of ``PUNCTUATION`` replaced by spaces, then whitespace-split."""
    for char in PUNCTUATION:
        answer = answer.replace(char, " ")
    return answer.split()


def can_infer_option(answer: str, choices: Iterable[str]) -> str | None:
    """A choice letter (or Z) read from the tokens of ``answer``; ``choices`` are the valid letters."""
    if API_FAILURE in answer:
        return None
    for phrase in REFUSALS:
        if phrase in answer:
            return NONE_LETTER
    letters = list(choices)
    tokens = letter_tokens(answer)
    found = [letter for letter in letters if letter in tokens]
    if len(found) == 1:
        return found[0]
    if not found and NONE_LETTER in tokens:
        return NONE_LETTER
    return None


def can_infer_text(answer: str, choices: Mapping[str, object]) -> str | None:
    """The letter of the only option whose lower-cased text occurs in the lower-cased ``answer``."""
    lowered = answer.lower()
    found = [letter for letter, text in choices.items() if str(text).lower() in lowered]
    return found[0] if len(found) == 1 else None


def can_infer(answer: object, choices: Mapping[str, object]) -> str | None:
    """VLMEvalKit's ``can_infer``: the letter rule, else the option-text rule (``answer`` is str()-ed)."""
    text = str(answer)
    return can_infer_option(text, choices) or can_infer_text(text, choices)


def lmms_can_infer_option(answer: str, letters: str = LMMS_LETTERS) -> str | None:
    """lmms-eval's letter rule over ``letters`` (A-E): bare tokens, then affixed tokens."""
    if API_FAILURE in answer:
        return None
    tokens = answer.split()
    bare = [letter for letter in letters if letter in tokens]
    # The bare-token rule is skipped when "A" is a token of a prediction of more than 3 tokens.
    if len(bare) == 1 and not ("A" in tokens and len(tokens) > 3):
        return bare[0]
    for prefix, suffix in LMMS_AFFIXES:
        found = [letter for letter in letters if prefix + letter + suffix in tokens]
        if len(found) == 1:
            return found[0]
    return None


def lmms_can_infer(answer: str, choices: Mapping[str, object]) -> str | None:
    """lmms-eval's ``can_infer``: its letter rule (letters A-E whatever the options), else the text rule."""
    return lmms_can_infer_option(answer) or can_infer_text(answer, choices)
