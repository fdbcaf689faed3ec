"""Label masks per chat template, checked against masks worked out by hand.

A word-level tokenizer makes every word one token, so the expected ids and labels can be written out:
``M`` marks a masked position (-100), ``I`` an image token.
"""

from __future__ import annotations

import pytest

from training.conversation import (
    IGNORE_INDEX,
    BadSample,
    encode_conversation,
    fit_length,
    normalise_turns,
    render,
    tokenize,
)

WORDS = ["<unk>", "<s>", "</s>", "<pad>", "<image>", "<|endoftext|>", "<bos>", "<eos>", "<|im_end|>",
         "SYS", "USER:", "ASSISTANT:", "q1", "q2", "a1", "a2", "cap"]  # fmt: skip
ID = {w: i for i, w in enumerate(WORDS)}
IMG = ID["<image>"]
M = IGNORE_INDEX
N_IMAGE = 3


def word_tokenizer(bos: str | None):
    """Whitespace words -> ids; ``bos`` (or nothing) prepended like the LLM's own tokenizer does."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(ID, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.add_special_tokens(WORDS[:9])
    if bos is not None:
        tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", special_tokens=[(bos, ID[bos])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token=bos, pad_token="<pad>")


TWO_TURNS = [
    {"from": "human", "value": "q1 <image>"},
    {"from": "gpt", "value": "a1"},
    {"from": "human", "value": "q2"},
    {"from": "gpt", "value": "a2"},
]


def ids_and_labels(spec: list[tuple[str, bool]]) -> tuple[list[int], list[int]]:
    """(ids, labels) from (word, trained) pairs; the word "I" is one image token."""
    ids = [IMG if w == "I" else ID[w] for w, _ in spec]
    return ids, [i if trained else M for i, (_, trained) in zip(ids, spec)]


def encode(template: str, bos: str | None, turns=TWO_TURNS, has_image: bool = True, max_length: int = 64):
    tokenizer = word_tokenizer(bos)
    return encode_conversation(turns, has_image, template, tokenizer, IMG, N_IMAGE, max_length, system="SYS")


def _chat(bos: str | None, stop: str) -> tuple[list[int], list[int]]:
    """SYS USER: <image>\\nq1 ASSISTANT: a1{stop}USER: q2 ASSISTANT: a2{stop}, answers and stops trained."""
    spec = [(bos, False)] if bos else []
    spec += [("SYS", False), ("USER:", False), ("I", False), ("I", False), ("I", False), ("q1", False),
             ("ASSISTANT:", False), ("a1", True), (stop, True), ("USER:", False), ("q2", False),
             ("ASSISTANT:", False), ("a2", True), (stop, True)]  # fmt: skip
    return ids_and_labels(spec)


@pytest.mark.parametrize(
    ("template", "bos", "stop"),
    [
        ("v1", "<s>", "</s>"),
        ("llama", "<s>", "</s>"),
        ("phi", None, "<|endoftext|>"),
        ("gemma", "<bos>", "<eos>"),
        ("qwen2", None, "<|im_end|>"),
    ],
)
def test_chat_template_masks_everything_but_the_answers(template: str, bos: str | None, stop: str) -> None:
    assert encode(template, bos) == _chat(bos, stop)


def test_plain_trains_the_caption_only() -> None:
    turns = [{"from": "human", "value": "<image>\ndescribe it"}, {"from": "gpt", "value": "cap"}]
    expected = ids_and_labels([("<s>", False), ("I", False), ("I", False), ("I", False), ("cap", True)])
    assert encode("plain", "<s>", turns) == expected
    no_bos = ids_and_labels([("I", False), ("I", False), ("I", False), ("cap", True)])
    assert encode("plain", None, turns) == no_bos


def test_text_only_sample_has_no_image_tokens() -> None:
    turns = [{"from": "human", "value": "q1"}, {"from": "gpt", "value": "a1"}]
    pieces = [("<s>", False), ("SYS", False), ("USER:", False), ("q1", False), ("ASSISTANT:", False)]
    expected = ids_and_labels([*pieces, ("a1", True), ("</s>", True)])
    assert encode("v1", "<s>", turns, has_image=False) == expected


def test_image_placeholder_moves_to_the_front_of_the_first_question() -> None:
    pairs = normalise_turns(TWO_TURNS, has_image=True)
    assert pairs == [("<image>\nq1", "a1"), ("q2", "a2")]
    assert normalise_turns(TWO_TURNS, has_image=False)[0] == ("q1", "a1")  # a stray placeholder is dropped


def test_leading_non_human_and_trailing_question_are_dropped() -> None:
    turns = [{"from": "gpt", "value": "hello"}, *TWO_TURNS, {"from": "human", "value": "unanswered"}]
    assert normalise_turns(turns, has_image=False) == [("q1", "a1"), ("q2", "a2")]


@pytest.mark.parametrize(
    ("turns", "reason"),
    [
        ([{"from": "human", "value": "q1"}], "no_assistant_turn"),
        ([], "no_assistant_turn"),
        ([{"from": "human", "value": "q1"}, {"from": "human", "value": "q2"}, {"from": "gpt", "value": "a"}],
         "bad_conversation"),
    ],
)
def test_malformed_conversations_are_bad_samples(turns, reason: str) -> None:
    with pytest.raises(BadSample) as info:
        normalise_turns(turns, has_image=False)
    assert info.value.reason == reason


def test_truncation_keeps_what_fits() -> None:
    ids, labels = encode("v1", "<s>", max_length=12)  # cuts inside the second round
    full_ids, full_labels = _chat("<s>", "</s>")
    assert (ids, labels) == (full_ids[:12], full_labels[:12])
    assert [x for x in labels if x != M] == [ID["a1"], ID["</s>"]]


def test_image_tokens_beyond_max_length_are_a_bad_sample() -> None:
    with pytest.raises(BadSample) as info:
        encode("v1", "<s>", max_length=4)
    assert info.value.reason == "image_tokens_exceed_max_length"


def test_no_answer_within_max_length_is_a_bad_sample() -> None:
    with pytest.raises(BadSample) as info:
        encode("v1", "<s>", max_length=8)  # image fits, the first answer does not
    assert info.value.reason == "no_answer_within_max_length"
    with pytest.raises(BadSample):
        fit_length([1, 2, 3], [M, M, M], 2, IMG)


def test_byte_level_tokenizer_trains_exactly_the_answer_text() -> None:
    """With the demo's BPE (spaces inside tokens), the trained tokens decode to the answers and stops."""
    from model_adapters.demo_model import demo_corpus, train_tokenizer

    tokenizer = train_tokenizer(demo_corpus())
    image_id = tokenizer.convert_tokens_to_ids("<image>")
    pairs = [("<image>\nWhat colour is the circle?", "red"), ("Is it a star?", "No, it is not.")]
    rendered = render("v1", pairs, has_image=True)
    ids, labels = tokenize(rendered, tokenizer, image_id, 4)
    trained = tokenizer.decode([t for t in labels if t != M])
    assert trained == " red</s> No, it is not.</s>"
    assert ids.count(image_id) == 4 and ids[0] == tokenizer.bos_token_id and ids.count(tokenizer.bos_token_id) == 1
    # The prompt part tokenises exactly as the tinyllava adapter tokenises the inference prompt.
    first = ids.index(tokenizer.convert_tokens_to_ids("</s>"))
    prompt_end = max(i for i in range(first) if labels[i] == M) + 1
    from model_adapters.templates import get_template
    from model_adapters.tinyllava import tokenizer_image_token

    prompt = get_template("v1").render("<image>\nWhat colour is the circle?")
    assert ids[:prompt_end] == tokenizer_image_token(prompt, tokenizer, image_id, 4)


def test_a_lone_space_token_before_the_answer_is_trained() -> None:
    """The inference prompt ends at ``ASSISTANT:``; when the space is a token of its own, it must be learnt too."""
    from model_adapters.demo_model import demo_corpus, train_tokenizer

    tokenizer = train_tokenizer(demo_corpus())
    assert tokenizer.tokenize(" xylophone")[0] == "Ġ"  # a word the BPE never saw: the space stands alone
    rendered = render("v1", [("<image>\nWhat is it?", "xylophone")], has_image=True)
    _, labels = tokenize(rendered, tokenizer, tokenizer.convert_tokens_to_ids("<image>"), 4)
    assert tokenizer.decode([t for t in labels if t != M]) == " xylophone</s>"
