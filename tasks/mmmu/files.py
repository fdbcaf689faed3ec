"""The MMMU files under the data root, as ``prepare`` and the demo write them (see the package docstring).

Facts kept from the official code: the prompt is MMMU's ``construct_prompt`` with ``configs/llava1.5.yaml``
(``multi_choice_example_format`` "{}\\n{}\\nAnswer with the option's letter from the given choices
directly.", ``short_ans_example_format`` "{}\\nAnswer the question using a single word or phrase.", no task
instruction; options as ``(A) option\\n`` lines); the image is ``image_1`` unless the options name more than
one ``<img='path'>`` (``process_single_sample``); letters run from ``A`` (``get_multi_choice_info``).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from typing import Any

MULTIPLE_CHOICE = "multiple-choice"
MC_INSTRUCTION = "Answer with the option's letter from the given choices directly."
OPEN_INSTRUCTION = "Answer the question using a single word or phrase."
OPTION_IMAGE = re.compile(r"<img='(.*?)'>")
N_IMAGE_COLUMNS = 7


def letters(n: int) -> list[str]:
    return [chr(ord("A") + i) for i in range(n)]


def parse_options(value: Any, where: str) -> list[str]:
    """The options of a row: the dataset's string form of a Python list, or a list."""
    from harness.errors import DataError

    if isinstance(value, str):
        try:
            value = ast.literal_eval(value) if value.strip() else []
        except (ValueError, SyntaxError) as exc:
            raise DataError(f"{where}: 'options' is not a Python list literal ({exc})") from exc
    if not isinstance(value, list | tuple):
        raise DataError(f"{where}: 'options' is not a list")
    return [str(o) for o in value]


def tinyllava_prompt(question: str, question_type: str, options: Sequence[str]) -> str:
    """MMMU's ``construct_prompt`` with the LLaVA-1.5 config (what TinyLLaVA's question file holds)."""
    if question_type == MULTIPLE_CHOICE:
        example = "".join(f"({letter}) {option}\n" for letter, option in zip(letters(len(options)), options))
        return f"{question}\n{example}\n{MC_INSTRUCTION}"
    return f"{question}\n{OPEN_INSTRUCTION}"


def ground_truth(question_type: str, answer: str) -> str | list[str]:
    """answer_dict_val.json's ``ground_truth``: the dataset's answer, a list where it writes a list of answers."""
    text = answer.strip()
    if question_type != MULTIPLE_CHOICE and text.startswith("[") and text.endswith("]"):
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return answer
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
    return answer


def question_entry(
    sid: str,
    question: str,
    question_type: str,
    options: Sequence[str],
    answer: str,
    images: dict[str, str],
    extra: dict[str, Any],
) -> dict[str, Any]:
    """One entry of ``anns_for_eval.json``; ``images`` maps ``image_N`` to its file under ``all_images``."""
    entry: dict[str, Any] = {"id": sid, "question_type": question_type}
    entry["prompt"] = tinyllava_prompt(question, question_type, options)
    option_images = [p for o in options for p in OPTION_IMAGE.findall(o)]
    if "image_1" in images and len(option_images) <= 1:
        entry["image"] = images["image_1"]
    if question_type == MULTIPLE_CHOICE:
        entry["all_choices"] = letters(len(options))
        entry["index2ans"] = dict(zip(letters(len(options)), options))
    entry.update(question=question, options=list(options), answer=answer, images=images, **extra)
    return entry


def answer_entry(question_type: str, answer: str) -> dict[str, Any]:
    """One value of ``answer_dict_val.json``."""
    return {"question_type": question_type, "ground_truth": ground_truth(question_type, answer)}
