"""The lines of LLaVA's question files, as the prepare modules and the demo writers write them."""

from __future__ import annotations

from typing import Any


def question_line(question_id: Any, image: str, text: str, category: str = "default") -> dict[str, Any]:
    """One line of a LLaVA question file (``question_id``, ``image``, ``text``, ``category``, in LLaVA's order)."""
    return {"question_id": question_id, "image": image, "text": text, "category": category}
