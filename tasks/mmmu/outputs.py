"""MMMU's own answer files, for ``harness score``.

- An output folder (``main_parse_and_eval.py --path DIR``): ``DIR/<Subject>/output.json``, one list per
  subject of ``{id, question_type, answer, all_choices, index2ans, response}`` (``all_choices`` and
  ``index2ans`` for multiple-choice questions); the raw responses are parsed. The gold answers and
  options come from the files themselves, so no data root is read, as the official script reads none.
  Subjects are read in ``CAT_SHORT2LONG`` order; folders of other names are ignored.
- A prediction file (``main_eval_only.py --output_path FILE``, and what TinyLLaVA Factory's
  ``convert_answer_to_mmmu.py`` writes): one JSON object ``{id: prediction}``, multiple-choice predictions
  already parsed. Scored against the data root's questions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.data.readers import read_json
from harness.errors import DataError
from harness.types import Response, Sample
from tasks.mmmu.subjects import SUBJECTS

OUTPUT_FILE = "output.json"


def is_output_folder(path: Path) -> bool:
    """Whether ``path`` is a folder with at least one ``<Subject>/output.json``."""
    return path.is_dir() and any((path / subject / OUTPUT_FILE).is_file() for subject in SUBJECTS)


def _text_field(item: Mapping[str, Any], key: str, where: str) -> str:
    value = item.get(key)
    if not isinstance(value, str):
        raise DataError(f"{where}: '{key}' is not a string")
    return value


def read_output_folder(path: Path) -> tuple[list[Sample], dict[str, Response]]:
    """Samples (gold answers and options from the files) and raw responses of an output folder."""
    samples: list[Sample] = []
    responses: dict[str, Response] = {}
    for subject in SUBJECTS:
        file = path / subject / OUTPUT_FILE
        if not file.is_file():
            continue
        items = read_json(file)
        if not isinstance(items, list):
            raise DataError(f"{file}: expected a JSON list of outputs")
        for number, item in enumerate(items):
            where = f"{file}: item {number}"
            if not isinstance(item, Mapping):
                raise DataError(f"{where}: not a JSON object")
            for key in ("id", "question_type", "answer", "response"):
                if key not in item:
                    raise DataError(f"{where}: missing field '{key}'")
            sid = _text_field(item, "id", where)
            qtype = _text_field(item, "question_type", where)
            meta: dict[str, Any] = {"subject": subject, "question_type": qtype}
            if qtype == "multiple-choice":
                choices, index2ans = item.get("all_choices"), item.get("index2ans")
                if not isinstance(choices, list) or not isinstance(index2ans, Mapping):
                    raise DataError(f"{where}: a multiple-choice output needs 'all_choices' and 'index2ans'")
                meta["all_choices"] = [str(c) for c in choices]
                meta["index2ans"] = {str(k): str(v) for k, v in index2ans.items()}
            samples.append(Sample(id=sid, question="", target=item["answer"], metadata=meta))
            response = item["response"]
            responses[sid] = (
                Response(text=response) if isinstance(response, str)
                else Response(error=f"{where}: 'response' is not a string")
            )  # fmt: skip
    return samples, responses


def read_predictions(path: Path) -> dict[str, Any] | None:
    """The ``{id: prediction}`` object of a prediction file, or None when ``path`` is no such file."""
    if not path.is_file() or path.suffix != ".json":
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def prediction_responses(
    path: Path, data: Mapping[str, Any], samples: list[Sample]
) -> tuple[dict[str, Response], list[str]]:
    """Responses by sample id from a prediction object, and notes on ids that name no question."""
    ids = {s.id for s in samples}
    responses: dict[str, Response] = {}
    unknown = 0
    for key, value in data.items():
        if key not in ids:
            unknown += 1
            continue
        responses[key] = (
            Response(text=value) if isinstance(value, str)
            else Response(error=f"{path}: prediction of {key} is not a string")
        )  # fmt: skip
    notes = [f"{path.name}: {unknown} prediction(s) name no question of the data root; ignored"] if unknown else []
    return responses, notes
