"""The shared VQA answer machinery, quirk by quirk, from the rules of vqaEval.py, EvalAI and lmms-eval."""

from __future__ import annotations

import pytest

from tasks.common.vqa_eval import (
    CONTRACTIONS,
    EVALAI_COMMA,
    PUNCTUATION,
    clean_whitespace,
    evalai_answer,
    evalai_steps,
    leave_one_out_accuracy,
    lmms_eval_vqa_score,
    normalize_official,
    official_vqa_score,
    process_digit_article,
    process_punctuation,
    textvqa_score,
)

# ----------------------------------------------------------------------------------------------
# punctuation step


def test_the_21_characters_and_the_ones_left_alone() -> None:
    assert len(PUNCTUATION) == 21 and set(PUNCTUATION) == set(';/[]"{}()=+\\_-><@`,?!')
    assert process_punctuation("a:b'c#d$e%f&g*h") == "a:b'c#d$e%f&g*h"


@pytest.mark.parametrize("char", PUNCTUATION)
def test_each_character_becomes_a_space_unless_next_to_a_space(char: str) -> None:
    assert process_punctuation(f"ab{char}cd") == "ab cd"
    assert process_punctuation(f"ab {char}cd") == "ab cd"  # space before: deleted
    assert process_punctuation(f"ab{char} cd") == "ab cd"  # space after: deleted


def test_the_space_rule_applies_to_every_occurrence() -> None:
    # One "- " anywhere deletes every hyphen, even those between letters.
    assert process_punctuation("t-shirt - red") == "tshirt  red"
    assert process_punctuation("t-shirt-red") == "t shirt red"


def test_each_character_is_decided_on_its_own() -> None:
    assert process_punctuation("x-y / z") == "x y  z"  # '-' has no space next to it, '/' does


def test_decisions_read_the_unmodified_input() -> None:
    # '(' becomes a space first, which puts a space next to '-' in the output; '-' is still decided on
    # the input "a(-b", where it has no space neighbour, so it becomes a space too (not deleted).
    assert process_punctuation("a(-b") == "a  b"


def test_digit_comma_digit_anywhere_deletes_every_character() -> None:
    assert process_punctuation("1,000-pound") == "1000pound"
    assert process_punctuation("red,white 1,5") == "redwhite 15"
    assert process_punctuation("red,white") == "red white"
    assert process_punctuation("1, 2") == "1 2"  # ", " next to a space: deleted, not digit-comma-digit


def test_official_comma_pattern_is_one_comma_but_evalai_accepts_a_run() -> None:
    assert process_punctuation("1,,2") == "1  2"
    assert process_punctuation("1,,2", EVALAI_COMMA) == "12"
    assert process_punctuation("1,2", EVALAI_COMMA) == process_punctuation("1,2") == "12"


def test_periods_not_followed_by_a_digit_are_deleted() -> None:
    assert process_punctuation("u.s.") == "us"
    assert process_punctuation("1.5.") == "1.5"  # a preceding digit does not protect the last one
    assert process_punctuation("5.") == "5"
    assert process_punctuation("3.14") == "3.14"
    assert process_punctuation(".5") == ".5"
    assert process_punctuation("mr. smith") == "mr smith"


def test_malformed_lookbehind_protects_nothing() -> None:
    # (?!<=\d) is a lookahead for "<=" + digit at the period itself: it can never match.
    assert process_punctuation("1.a") == "1a"
    assert process_punctuation("1.") == "1"


def test_only_the_first_32_periods_go() -> None:
    assert process_punctuation("." * 40) == "." * 8
    assert process_punctuation("a." * 33) == "a" * 32 + "a."


# ----------------------------------------------------------------------------------------------
# digits, articles, contractions


def test_number_words_up_to_ten() -> None:
    assert process_digit_article("none zero one two three four five six seven eight nine ten eleven") == (
        "0 0 1 2 3 4 5 6 7 8 9 10 eleven"
    )
    assert process_digit_article("Two") == "2"


def test_articles_dropped_and_article_only_answer_is_empty() -> None:
    assert process_digit_article("the red car") == "red car"
    assert process_digit_article("A") == ""
    assert process_digit_article("an the a") == ""
    assert process_digit_article("theater") == "theater"


def test_contractions_and_the_unreachable_capitalised_keys() -> None:
    assert process_digit_article("dont") == "don't"
    assert process_digit_article("whats up") == "what's up"
    assert {"Im", "Ive", "Id've", "I'dve"} <= set(CONTRACTIONS)
    assert process_digit_article("Im") == "im"  # lower-cased before the lookup: "Im" never matches
    assert process_digit_article("Ive") == "ive"
    assert process_digit_article("somebody'd") == "somebodyd"  # the table maps this one backwards


def test_whitespace_collapses() -> None:
    assert process_digit_article("  red \t  car ") == "red car"
    assert clean_whitespace("\tyes\n") == "yes"
    assert clean_whitespace("a\nb") == "a b"


def test_official_normalisation_is_punctuation_then_digits() -> None:
    assert normalize_official("Two.") == "2"
    assert normalize_official("The dog's!") == "dog's"
    assert normalize_official("1,2-3") == "123"


# ----------------------------------------------------------------------------------------------
# EvalAI processor and lmms-eval's steps


def test_evalai_deletes_commas_and_question_marks_first() -> None:
    assert evalai_answer("red,white") == "redwhite"
    assert evalai_answer("Red, White?") == "red white"
    assert evalai_answer("1,000") == "1000"
    assert evalai_answer("what?") == "what"


def test_evalai_splits_possessive_s() -> None:
    assert evalai_answer("man's hat") == "man 's hat"
    assert evalai_answer("It's") == "it 's"


def test_evalai_digit_comma_lookaround_cannot_fire() -> None:
    # The commas are gone before the punctuation step, so '-' is replaced, not deleted as vqaEval.py does.
    assert evalai_answer("1,2-3") == "12 3"
    assert normalize_official("1,2-3") == "123"


def test_evalai_lowercases_strips_and_normalises() -> None:
    assert evalai_answer("  Yes.\n") == "yes"
    assert evalai_answer("Two") == "2"
    assert evalai_answer("The") == ""
    assert evalai_answer("A\tdog") == "dog"


def test_lmms_eval_steps_skip_the_first_deletions() -> None:
    assert evalai_steps("red,white") == "red white"
    assert evalai_steps("man's") == "man's"
    assert evalai_steps("Yes.") == "yes"
    assert evalai_steps("why?") == "why"  # '?' kept until the punctuation step: a space, then split away
    assert evalai_steps("1,,2") == "12"


# ----------------------------------------------------------------------------------------------
# leave-one-out accuracy


@pytest.mark.parametrize(("k", "expected"), [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (10, 1.0)])
def test_leave_one_out_by_number_of_matches(k: int, expected: float) -> None:
    answers = ["cat"] * k + ["dog"] * (10 - k)
    assert leave_one_out_accuracy("cat", answers) == pytest.approx(expected)


def test_identical_records_leave_each_other_out() -> None:
    # vqaEval.py removes every answer dict equal to the current one; ids 1..10 make them all differ.
    answers = ["yes"] * 4 + ["no"] * 6
    distinct = [("yes", i) for i in range(10)]
    assert leave_one_out_accuracy("yes", answers, distinct) == pytest.approx(1.0)
    same = [("yes", 1)] * 4 + [("no", i) for i in range(6)]
    # the four identical yes records exclude each other: each of them sees 0 matches, the six others see 4
    assert leave_one_out_accuracy("yes", answers, same) == pytest.approx(0.6)
    with pytest.raises(ValueError):
        leave_one_out_accuracy("yes", answers, distinct[:3])


# ----------------------------------------------------------------------------------------------
# per-question scorers


def test_official_compares_raw_when_the_ten_answers_agree() -> None:
    ten_yes = ["yes"] * 10
    assert official_vqa_score("yes", ten_yes).accuracy == 1.0
    assert official_vqa_score("Yes", ten_yes).accuracy == 0.0
    assert official_vqa_score("yes.", ten_yes).accuracy == 0.0
    assert official_vqa_score(" yes\n", ten_yes).accuracy == 1.0  # whitespace cleaning still happens
    assert official_vqa_score("Yes", ten_yes).normalized is False


def test_official_normalises_when_answers_differ() -> None:
    nine_yes = ["yes"] * 9 + ["no"]
    scored = official_vqa_score("Yes.", nine_yes)
    assert scored.accuracy == 1.0 and scored.normalized and scored.prediction == "yes"
    assert official_vqa_score("two", ["2"] * 5 + ["Two"] * 5).accuracy == 1.0


def test_uniform_check_is_on_whitespace_cleaned_answers() -> None:
    answers = ["yes"] * 9 + ["yes\n"]
    assert official_vqa_score("Yes", answers).accuracy == 0.0  # cleaned, they agree: no normalisation


def test_official_answer_records_enter_the_comparison() -> None:
    answers = ["red"] * 4 + ["blue"] * 6
    records = [("yes", 1)] * 4 + [("yes", i) for i in range(2, 8)]
    assert official_vqa_score("red", answers, records).accuracy == pytest.approx(0.6)
    assert official_vqa_score("red", answers).accuracy == pytest.approx(1.0)


def test_lmms_eval_always_normalises_both_sides() -> None:
    ten_yes = ["yes"] * 10
    assert lmms_eval_vqa_score("Yes.", ten_yes).accuracy == 1.0
    assert official_vqa_score("Yes.", ten_yes).accuracy == 0.0
    ten_two = ["Two"] * 10
    assert lmms_eval_vqa_score("two", ten_two).accuracy == 1.0
    assert official_vqa_score("two", ten_two).accuracy == 0.0
    assert lmms_eval_vqa_score("  red,white\n", ["red white"] * 10).accuracy == 1.0


def test_textvqa_always_processes_and_needs_ten_answers() -> None:
    assert textvqa_score("Yes.", ["yes"] * 10).accuracy == 1.0  # no uniform-answers shortcut
    assert textvqa_score("Coca Cola", ["coca cola"] * 2 + ["coke"] * 8).accuracy == pytest.approx(0.6)
    assert textvqa_score("pepsi", ["coca cola"] * 10).accuracy == 0.0
    with pytest.raises(ValueError):
        textvqa_score("yes", ["yes"] * 9)
    assert textvqa_score("yes", ["yes"] * 9, require_ten=False).accuracy == 1.0


def test_empty_prediction_matches_article_only_answers() -> None:
    answers = ["the"] * 4 + ["stop"] * 6
    assert textvqa_score("", answers).accuracy == 1.0
    assert textvqa_score("", ["stop"] * 10).accuracy == 0.0
    assert official_vqa_score("", ["a"] * 3 + ["stop"] * 7).accuracy == pytest.approx(0.9)
