"""Chat templates: exact inference prompts, stop strings and lookup errors."""

from __future__ import annotations

import dataclasses

import pytest

from harness.errors import UsageError
from model_adapters.templates import DEFAULT_SYSTEM, TEMPLATES, get_template, template_names

SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)
STOPS = {"phi": "<|endoftext|>", "v1": "</s>", "llama": "</s>", "gemma": "<eos>", "qwen2": "<|im_end|>"}


def test_registry_has_the_five_templates_with_their_stop_strings() -> None:
    assert template_names() == ["phi", "v1", "llama", "gemma", "qwen2"]
    assert {name: t.stop for name, t in TEMPLATES.items()} == STOPS
    assert DEFAULT_SYSTEM == SYSTEM


@pytest.mark.parametrize("name", list(STOPS))
def test_render_is_the_llava_two_style_prompt(name: str) -> None:
    template = get_template(name)
    assert template.name == name
    assert template.render("<image>\nWhat is the colour of the bus?") == (
        "A chat between a curious user and an artificial intelligence assistant. The assistant gives "
        "helpful, detailed, and polite answers to the user's questions. USER: <image>\n"
        "What is the colour of the bus? ASSISTANT:"
    )
    assert template.render("Hi") == f"{SYSTEM} USER: Hi ASSISTANT:"


def test_system_override_replaces_the_default_text() -> None:
    template = get_template("phi")
    assert template.render("<image>\nQ?", system="Be brief.") == "Be brief. USER: <image>\nQ? ASSISTANT:"
    assert template.render("Q?", system="") == " USER: Q? ASSISTANT:"  # LLaVA keeps the separator


def test_templates_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        get_template("v1").stop = "x"  # type: ignore[misc]


def test_unknown_template_lists_the_valid_names() -> None:
    with pytest.raises(UsageError) as err:
        get_template("vicuna")
    message = str(err.value)
    assert "vicuna" in message
    for name in STOPS:
        assert name in message
