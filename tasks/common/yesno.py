"""The yes/no answer parser of MME's official ``calculation.py`` (also used by later yes/no tasks).

Rule (on the lower-cased answer, nothing stripped): an answer that is exactly ``yes`` or ``no``
is that label; otherwise ``yes`` anywhere in the first four characters gives ``yes``, else ``no``
there gives ``no``, else the label is ``other`` (always counted wrong).
"""

from __future__ import annotations

from typing import Literal

YesNo = Literal["yes", "no", "other"]


def yes_no_in_head(text: str) -> YesNo:
    """``yes`` when the first four characters contain it, else ``no`` when they contain that, else ``other``."""
    head = text[:4]
    if "yes" in head:
        return "yes"
    if "no" in head:
        return "no"
    return "other"


def parse_yes_no(answer: str) -> YesNo:
    """Label a raw model answer ``yes``, ``no`` or ``other`` exactly as MME's eval tool does."""
    text = answer.lower()
    if text in ("yes", "no"):
        return text  # type: ignore[return-value]
    return yes_no_in_head(text)
