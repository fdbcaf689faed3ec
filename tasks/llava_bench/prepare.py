"""LLaVA-Bench-in-the-Wild from the lmms-lab parquet copy, in the layout of liuhaotian/llava-bench-in-the-wild.

Writes under ``<root>/llava-bench-in-the-wild/``, in the order of the copy:

- ``questions.jsonl``: ``image``, ``text``, ``category``, ``question_id`` (the official key order);
- ``context.jsonl``: ``id``, ``image``, ``caption``, one line per image (first appearance order);
- ``answers_gpt4.jsonl``: ``question_id``, ``prompt``, ``text`` (the copy's ``gpt_answer``; it has no
  ``answer_id`` or ``model_id``, which scoring does not need);
- ``images/<image>``: each image once, bytes as stored.

Schema of the copy (lmms-lab/llava-bench-in-the-wild, split ``train``, ``data/train-*.parquet``; the
dataset card's features, and the fields lmms-eval's ``tasks/llava-in-the-wild`` reads): ``question_id``
(int), ``question``, ``image`` (the ``datasets`` Image struct), ``caption`` (string), ``gpt_answer``,
``category`` (conv / detail / complex) and ``image_id`` ("001"...). The image file name is the struct's
``path`` when it has one, else ``<image_id>.jpg``.

Not in the copy, so not written: ``rule.json``, LLaVA's review rules. Add it by hand from
https://github.com/haotian-liu/LLaVA/blob/main/llava/eval/table/rule.json; ``harness data`` names it as
missing until then.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from harness.data.prepare import image_bytes, iter_rows, note, write_file, write_jsonl
from harness.errors import DataError
from tasks.common.prepare import ParquetCopy

HF_DATASET = "lmms-lab/llava-bench-in-the-wild"
TRAIN = ParquetCopy(
    "llava_bench", "data/train-*.parquet", "LLaVA-Bench-in-the-Wild", expected=60, official="questions.jsonl"
)
HF_PATTERNS = {"llava_bench": (TRAIN.pattern,)}
FOLDER = "llava-bench-in-the-wild"
REQUIRED = ("question_id", "question", "image", "caption", "gpt_answer", "category", "image_id")
PREFIX = "llava_bench_"


def image_name(image: Any, image_id: Any) -> str:
    """The struct's file name when it has one, else ``<image_id>.jpg``."""
    path = image.get("path") if isinstance(image, dict) else None
    name = PurePosixPath(str(path)).name if path else ""
    return name or f"{image_id}.jpg"


def question_id(value: Any) -> Any:
    """The id as the official file writes it: an integer when the copy's value is one."""
    text = str(value).strip()
    return int(text) if text.lstrip("-").isdigit() else text


def prepare_root(source: Path, root: Path) -> None:
    """Write the four official files' worth of data (all but rule.json) and the images under ``root``."""
    source, folder = Path(source), Path(root) / FOLDER
    paths = TRAIN.files(source)
    questions: list[dict[str, Any]] = []
    references: list[dict[str, Any]] = []
    contexts: dict[str, dict[str, Any]] = {}
    images: dict[str, bytes] = {}
    for where, row in iter_rows(paths, "llava-bench questions", REQUIRED):
        raw = image_bytes(row["image"], where)
        name = image_name(row["image"], row["image_id"])
        if images.setdefault(name, raw) != raw:
            raise DataError(f"{where}: two different images are both named {name}")
        category = str(row["category"]).removeprefix(PREFIX)
        qid = question_id(row["question_id"])
        questions.append({"image": name, "text": row["question"], "category": category, "question_id": qid})
        references.append({"question_id": qid, "prompt": row["question"], "text": row["gpt_answer"]})
        context = contexts.setdefault(name, {"id": str(row["image_id"]), "image": name, "caption": row["caption"]})
        if context["caption"] != row["caption"]:
            note(f"llava_bench: image {name} has several captions in the copy; the first is kept")
    TRAIN.check_count(len(questions))
    note("llava_bench: answers_gpt4.jsonl has no answer_id / model_id (not in the copy)")
    note("llava_bench: rule.json is not in the copy; add LLaVA's llava/eval/table/rule.json by hand")
    write_jsonl(folder / "questions.jsonl", questions)
    write_jsonl(folder / "context.jsonl", list(contexts.values()))
    write_jsonl(folder / "answers_gpt4.jsonl", references)
    for name, raw in images.items():
        write_file(folder / "images" / name, raw)
