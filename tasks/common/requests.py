"""What the tasks share when they build requests: LLaVA's constants, the image token, setting lookup.

The request itself is built by ``Task.build_request`` from the protocol's settings (prompt builder,
``max_new_tokens``, ``temperature``, ``stop``); the builders here and in ``tasks.common.base`` give its text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.errors import UsageError
from harness.types import IMAGE_PLACEHOLDER

LLAVA_EVAL_ZIP = "LLaVA eval.zip, https://github.com/haotian-liu/LLaVA/blob/main/docs/Evaluation.md"
SHORT_ANSWER = "Answer the question using a single word or phrase."
LLAVA_SUFFIX = "\n" + SHORT_ANSWER  # what LLaVA's short-answer question files append to each question
LETTER_ANSWER = "Answer with the option's letter from the given choices directly."


def setting_choice(settings: Mapping[str, Any], key: str, options: tuple[str, ...], default: str) -> str:
    """A protocol setting that must be one of ``options``; a bad value names the key and the choices."""
    value = str(settings.get(key, default))
    if value not in options:
        raise UsageError(f"protocol setting {key}={value!r} is not one of: {', '.join(options)}")
    return value


def with_image(text: str) -> str:
    """LLaVA puts the image token on its own line before the question."""
    return f"{IMAGE_PLACEHOLDER}\n{text}"
