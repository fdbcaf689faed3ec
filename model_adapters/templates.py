"""Chat templates of the TinyLLaVA family (LLaVA "TWO" separator style).

Every template renders the same inference prompt, ``{system} USER: {user_prompt} ASSISTANT:``; they differ
only in the stop string that ends an answer (LLaVA's ``sep2``), which follows the language model's EOS.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import UsageError

DEFAULT_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)


@dataclass(frozen=True)
class ChatTemplate:
    """One conversation template: its name, default system text and stop string."""

    name: str
    stop: str
    system: str = DEFAULT_SYSTEM

    def render(self, user_prompt: str, system: str | None = None) -> str:
        """The single-turn inference prompt; ``system`` (when not None) replaces the default system text.

        As in LLaVA, the system text is followed by one space even when it is empty.
        """
        system_text = self.system if system is None else system
        return f"{system_text} USER: {user_prompt} ASSISTANT:"


TEMPLATES: dict[str, ChatTemplate] = {
    t.name: t
    for t in (
        ChatTemplate("phi", stop="<|endoftext|>"),
        ChatTemplate("v1", stop="</s>"),
        ChatTemplate("llama", stop="</s>"),
        ChatTemplate("gemma", stop="<eos>"),
        ChatTemplate("qwen2", stop="<|im_end|>"),
    )
}


def template_names() -> list[str]:
    """The registered template names, in registry order."""
    return list(TEMPLATES)


def get_template(name: str) -> ChatTemplate:
    """The template called ``name``; UsageError listing the valid names otherwise."""
    try:
        return TEMPLATES[name]
    except KeyError:
        raise UsageError(f"unknown chat template '{name}'; valid templates: {', '.join(TEMPLATES)}") from None
