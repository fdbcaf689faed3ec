"""Multiple-choice letter extraction, rule by rule: VLMEvalKit's can_infer (early 2024) and lmms-eval's matcher."""

from __future__ import annotations

import pytest

from tasks.common.choice import (
    REFUSALS,
    can_infer,
    can_infer_option,
    can_infer_text,
    letter_tokens,
    lmms_can_infer,
    lmms_can_infer_option,
)

ABCD = {"A": "teddy bear", "B": "rabbit", "C": "cat", "D": "dog"}
AB = {"A": "left", "B": "right"}


# ----------------------------------------------------------------------------------------------
# VLMEvalKit: can_infer_option


@pytest.mark.parametrize(
    ("answer", "letter"),
    [
        ("B", "B"),
        ("B.", "B"),
        ("(B)", "B"),
        ("[C]", "C"),
        ("{D}", "D"),
        ("Answer: C", "C"),
        ("**A**", "A"),
        ("#B!", "B"),
        ("B; the rabbit", "B"),
        ("The answer is B, the rabbit.", "B"),
        ("\nD\n", "D"),
        ("A cat", "A"),  # "A" is a letter token here (the article check needs VERBOSE)
        ("A B", None),  # two letters
        ("b", None),  # letters are case-sensitive
        ("B-", None),  # "-" is not turned into a space
        ("B/C", None),
        ("Option'B'", None),
        ("", None),
        ("E", None),  # not among the choices
    ],
)
def test_option_letter_rule(answer: str, letter: str | None) -> None:
    assert can_infer_option(answer, ABCD) == letter


@pytest.mark.parametrize("phrase", REFUSALS)
def test_refusal_phrases_are_z(phrase: str) -> None:
    assert can_infer_option(f"Well. {phrase} Also B.", ABCD) == "Z"


def test_refusal_phrase_must_match_exactly() -> None:
    assert can_infer_option("cannot determine the answer", ABCD) is None


def test_api_failure_marker_matches_nothing() -> None:
    assert can_infer_option("Failed to obtain answer via API. B", ABCD) is None
    # can_infer then tries the option texts, which do not look for the marker
    assert can_infer("Failed to obtain answer via API. rabbit", ABCD) == "B"


@pytest.mark.parametrize(
    ("answer", "letter"),
    [
        ("Z", "Z"),
        ("Z.", "Z"),
        ("(Z)", "Z"),
        ("The output is Z", "Z"),
        ("Z A", "A"),  # a choice letter wins over Z
        ("Z Z", "Z"),
        ("z", None),
    ],
)
def test_lone_z_token(answer: str, letter: str | None) -> None:
    assert can_infer_option(answer, ABCD) == letter


def test_only_given_choice_letters_count() -> None:
    assert can_infer_option("C", AB) is None
    assert can_infer_option("C or B", AB) == "B"
    assert can_infer_option("D", ["A", "B", "C", "D"]) == "D"


def test_tokens_replace_exactly_the_listed_punctuation() -> None:
    assert letter_tokens("a.b(c)d[e]f,g:h;i!j*k#l{m}n") == list("abcdefghijklmn")
    assert letter_tokens("a-b/c'd\"e?f") == ["a-b/c'd\"e?f"]


# ----------------------------------------------------------------------------------------------
# VLMEvalKit: can_infer_text and can_infer


@pytest.mark.parametrize(
    ("answer", "letter"),
    [
        ("It is a Rabbit.", "B"),
        ("RABBIT", "B"),
        ("a dog and a cat", None),  # two option texts
        ("a hamster", None),
        ("teddy bear!", "A"),
    ],
)
def test_option_text_rule(answer: str, letter: str | None) -> None:
    assert can_infer_text(answer, ABCD) == letter


def test_option_text_inside_words_counts() -> None:
    assert can_infer_text("concatenate", ABCD) == "C"  # "cat" occurs inside the word


def test_option_text_rule_does_not_mutate_choices() -> None:
    choices = {"A": "Left", "B": "Right"}
    assert can_infer_text("right", choices) == "B"
    assert choices == {"A": "Left", "B": "Right"}


def test_can_infer_letter_first_then_text() -> None:
    assert can_infer("B", ABCD) == "B"
    assert can_infer("I think it is a dog", ABCD) == "D"
    assert can_infer("A rabbit", ABCD) == "A"  # the letter rule answers before the text rule
    assert can_infer("nothing like these", ABCD) is None
    assert can_infer(3, {"A": "3", "B": "4"}) == "A"  # non-text predictions are str()-ed


# ----------------------------------------------------------------------------------------------
# lmms-eval


@pytest.mark.parametrize(
    ("answer", "letter"),
    [
        ("B", "B"),
        ("B.", "B"),  # affix ("", ".")
        ("(B)", "B"),
        ("(B).", "B"),
        ("B,", "B"),
        ("B:", "B"),
        ("B)", "B"),
        (":B", "B"),
        (":B.", "B"),
        ("[B]", None),  # no such affix, no punctuation stripping
        ("**B**", None),
        ("E", "E"),  # E is a letter for lmms-eval (its "none" answer)
        ("Z", None),  # no Z
        ("The answer is B", "B"),
        ("A dog is here", None),  # "A" with more than 3 tokens skips the bare rule; no affixed letter
        ("A dog is B.", "B"),  # ... but the affixed "B." is taken
        ("A dog", "A"),  # 2 tokens: "A" is taken
        ("A B", None),
    ],
)
def test_lmms_eval_letter_rule(answer: str, letter: str | None) -> None:
    assert lmms_can_infer_option(answer) == letter


def test_lmms_eval_api_failure_and_text_rule() -> None:
    assert lmms_can_infer_option("Failed to obtain answer via API") is None
    assert lmms_can_infer("a rabbit it is", ABCD) == "B"
    assert lmms_can_infer("**B**", ABCD) is None


@pytest.mark.parametrize(
    ("answer", "vlmevalkit", "lmms_eval"),
    [
        ("[B]", "B", None),
        ("**C**", "C", None),
        ("Z", "Z", None),
        ("E", None, "E"),
        ("A dog is there", "A", "D"),  # VLMEvalKit: the "A" token; lmms-eval: skips it, then "dog" → D
        ("B) rabbit", "B", "B"),
    ],
)
def test_vlmevalkit_and_lmms_eval_differ(answer: str, vlmevalkit: str | None, lmms_eval: str | None) -> None:
    assert can_infer(answer, ABCD) == vlmevalkit
    assert lmms_can_infer(answer, ABCD) == lmms_eval
