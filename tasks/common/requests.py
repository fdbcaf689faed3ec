"""What the tasks share when they build requests: LLaVA's constants, protocol-setting lookup, requests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.errors import UsageError
from harness.types import IMAGE_PLACEHOLDER, GenerationSettings, Request, Sample

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


def make_request(
    task: str, sample: Sample, prompt: str, settings: Mapping[str, Any], default_max_new_tokens: int
) -> Request:
    """A request with the protocol's generation settings (``max_new_tokens``, ``stop``)."""
    return Request(
        task=task,
        sample_id=sample.id,
        prompt=prompt,
        images=sample.images,
        generation=GenerationSettings(
            max_new_tokens=int(settings.get("max_new_tokens", default_max_new_tokens)),
            stop=tuple(str(s) for s in settings.get("stop", ())),
        ),
    )


def image_question_request(task: str, sample: Sample, settings: Mapping[str, Any]) -> Request:
    """LLaVA's single-image request: ``<image>\\n`` + the question text of the question file."""
    return make_request(task, sample, with_image(sample.question), settings, 128)
