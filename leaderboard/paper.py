"""Published reference scores (``paper_numbers.json``), shown on the board as rows marked "paper"."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

PAPER_FILE = Path(__file__).with_name("paper_numbers.json")


@dataclass(frozen=True)
class PaperModel:
    name: str
    llm: str
    vision_tower: str
    n_parameters: int | None
    protocol: str
    source: str  # where the numbers were published
    scores: dict[str, float] = field(default_factory=dict)  # task -> its headline metric


def load_paper_models(path: Path = PAPER_FILE) -> tuple[PaperModel, ...]:
    """The reference rows; a malformed file is an error naming it."""
    from harness.errors import DataError

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return tuple(
            PaperModel(
                name=m["name"], llm=m["llm"], vision_tower=m["vision_tower"], n_parameters=m.get("n_parameters"),
                protocol=m["protocol"], source=m["source"], scores={k: float(v) for k, v in m["scores"].items()},
            )
            for m in data["models"]
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: not a paper numbers file ({type(exc).__name__}: {exc})") from exc


@cache
def paper_models() -> tuple[PaperModel, ...]:
    return load_paper_models()
