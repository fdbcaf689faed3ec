"""ScienceQA test from the lmms-lab parquet copy, in LLaVA's ``playground/data/eval/scienceqa`` layout.

Writes under the data root:

- ``scienceqa/problems.json``: one entry per test problem with the official fields in the official
  order (``question``, ``choices``, ``answer``, ``hint``, ``image`` ("image.png" or null), ``task``,
  ``grade``, ``subject``, ``topic``, ``category``, ``skill``, ``lecture``, ``solution``, ``split``);
- ``scienceqa/pid_splits.json``: ``{"test": [ids]}`` in the order of the copy;
- ``scienceqa/llava_test_CQM-A.json``: LLaVA's question file, ``{id, image?: "<id>/image.png",
  conversations: [{from: human, value}, {from: gpt, value: letter}]}`` with the human turn
  ``[<image>\\n][Context: <hint>\\n]<question>`` and one ``\\n<letter>. <choice>`` line per choice
  (the layout of LLaVA's eval.zip file);
- ``scienceqa/images/test/<id>/image.png``: the images, bytes as stored.

Schema of the copy, and where each fact comes from:

- config ``ScienceQA-FULL`` (all 4,241 test problems; ``ScienceQA-IMG`` has only the 2,017 with an
  image, and the official scorer walks every test id), split ``test``, files
  ``ScienceQA-FULL/test-*.parquet``; columns ``image`` (Image, null without one), ``question``,
  ``choices`` (list), ``answer`` (int8 index), ``hint``, ``task``, ``grade``, ``subject``,
  ``topic``, ``category``, ``skill``, ``lecture``, ``solution``: the dataset card's
  ``dataset_info`` and ``configs``; lmms-eval ``tasks/scienceqa/scienceqa_full.yaml`` /
  ``scienceqa_img.yaml`` and ``utils.py`` (read question, choices, hint, answer, image).

Limitation (recorded in the sources file): the copy has no problem id column, so the official
ScienceQA ids cannot be recovered. Problems get the ids ``hf-test-<row>`` (never a real ScienceQA
id, so an answers file keyed by official ids joins nothing rather than the wrong problems). Scores
on these files equal the official ones for the same answers, but answers made on the official files
(for example LLaVA's published predictions) cannot be scored against them. ``pid_splits.json`` holds
the test list only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.data.prepare import image_bytes, image_format, iter_rows, note, write_file
from harness.errors import DataError
from tasks.common.prepare import ParquetCopy
from tasks.scienceqa.scorer import OPTIONS

HF_DATASET = "lmms-lab/ScienceQA"
TEST = ParquetCopy(
    "scienceqa", "ScienceQA-FULL/test-*.parquet", "ScienceQA-FULL test", 4241, "test split", noun="test problems"
)
HF_PATTERNS = {"scienceqa": (TEST.pattern,)}

PROBLEMS = "scienceqa/problems.json"
PID_SPLITS = "scienceqa/pid_splits.json"
LLAVA_QUESTIONS = "scienceqa/llava_test_CQM-A.json"
IMAGES_DIR = "scienceqa/images/test"
TEXT_FIELDS = ("task", "grade", "subject", "topic", "category", "skill", "lecture", "solution")
COLUMNS = ("image", "question", "choices", "answer", "hint", *TEXT_FIELDS)
ID_PREFIX = "hf-test-"


def problem_id(row_number: int) -> str:
    return f"{ID_PREFIX}{row_number:04d}"


def official_problem(row: dict[str, Any], has_image: bool, where: str) -> dict[str, Any]:
    """One problems.json entry from a row of the copy."""
    choices = [str(c) for c in (row["choices"] or [])]
    answer = row["answer"]
    if not choices or len(choices) > len(OPTIONS):
        raise DataError(f"{where}: {len(choices)} choices; ScienceQA problems have 2 to 5")
    if not isinstance(answer, int) or not 0 <= answer < len(choices):
        raise DataError(f"{where}: answer {answer!r} is not an index into the {len(choices)} choices")
    problem: dict[str, Any] = {
        "question": str(row["question"]),
        "choices": choices,
        "answer": answer,
        "hint": str(row["hint"] or ""),
        "image": "image.png" if has_image else None,
    }
    problem.update({name: str(row[name] or "") for name in TEXT_FIELDS})
    problem["split"] = "test"
    return problem


def llava_human_turn(problem: dict[str, Any]) -> str:
    """The first human turn of LLaVA's CQM-A file for one problem."""
    text = f"Context: {problem['hint']}\n" if problem["hint"] else ""
    text += problem["question"] + "".join(f"\n{OPTIONS[i]}. {c}" for i, c in enumerate(problem["choices"]))
    return f"<image>\n{text}" if problem["image"] else text


def llava_entry(pid: str, problem: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": pid}
    if problem["image"]:
        entry["image"] = f"{pid}/image.png"
    entry["conversations"] = [
        {"from": "human", "value": llava_human_turn(problem)},
        {"from": "gpt", "value": OPTIONS[problem["answer"]]},
    ]
    return entry


def prepare_root(source: Path, root: Path) -> None:
    """Write ScienceQA test (problems, split list, LLaVA question file, images) under ``root``."""
    source, root = Path(source), Path(root)
    paths = TEST.files(source)
    problems: dict[str, dict[str, Any]] = {}
    not_png = 0
    for number, (where, row) in enumerate(iter_rows(paths, "scienceqa problems", COLUMNS)):
        pid = problem_id(number)
        has_image = row["image"] is not None
        problems[pid] = official_problem(row, has_image, where)
        if has_image:
            data = image_bytes(row["image"], where)
            not_png += image_format(data) != "png"
            write_file(root / IMAGES_DIR / pid / "image.png", data)
    note(
        "scienceqa: the copy has no problem ids; problems are numbered hf-test-<row>, so answers keyed by "
        "official ScienceQA ids (e.g. LLaVA's published predictions) cannot be scored on these files"
    )
    TEST.check_count(len(problems))
    if not_png:
        note(f"scienceqa: {not_png} images are not PNG data; written as they are under image.png")
    write_file(root / PROBLEMS, json.dumps(problems))
    write_file(root / PID_SPLITS, json.dumps({"test": list(problems)}))
    write_file(root / LLAVA_QUESTIONS, json.dumps([llava_entry(pid, p) for pid, p in problems.items()], indent=2))
