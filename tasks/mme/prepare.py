"""MME from the lmms-lab parquet copy, in LLaVA's ``playground/data/eval/MME`` layout.

Writes under the data root:

- ``MME/MME_Benchmark_release_version/<subtask>/``: the images, and per image ``<stem>.txt`` with its
  ``question<TAB>answer`` lines; for artwork, celebrity, landmark, posters and scene in ``images/``
  and ``questions_answers_YN/``, for the other nine side by side (the release layout);
- ``MME/eval_tool/Your_Results/<subtask>.txt``: the eval tool's templates, ``image<TAB>question<TAB>answer``
  lines, an image's two questions consecutive, in the order of the copy;
- ``MME/llava_mme.jsonl``: LLaVA's question file: ``question_id`` = ``image`` = ``<subtask>/<image path
  in the release folder>``, ``text`` = the question with " Please answer yes or no." (or its
  two-space variant) replaced by "\\nAnswer the question using a single word or phrase.",
  ``category`` = the subtask.

Schema of the copy, and where each fact comes from:

- one config, split ``test``, files ``data/test-*.parquet``, 2374 rows; columns ``question_id``
  (string, "<subtask>/<image file>"), ``image`` (Image), ``question`` (string, with the " Please
  answer yes or no." suffix), ``answer`` ("Yes"/"No"), ``category`` (the subtask): the dataset
  card's ``dataset_info`` and ``configs``; lmms-eval ``tasks/mme/mme.yaml`` (test_split) and
  ``utils.py`` (reads question, answer, category, question_id; strips the suffix from question);
- images: the ``datasets`` Image struct ``{"bytes", "path"}``.

Limitations: the eval tool's templates are rebuilt from the copy, so their line order is the copy's
(pairs stay consecutive, which is all calculation.py relies on); a ground-truth question that the copy
normalised (for example the official two-space " Please answer yes or no." variant turned into one
space) is written as the copy has it. Images are written as stored, not re-encoded. Some revisions
of the repository held two sets of parquet files; duplicated rows are an error.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.data.prepare import image_bytes, image_format, iter_rows, note, write_file, write_jsonl
from harness.errors import DataError
from tasks.common.prepare import ParquetCopy
from tasks.common.question_file import question_line
from tasks.common.requests import LLAVA_SUFFIX
from tasks.mme.scorer import ALL_SUBTASKS

HF_DATASET = "lmms-lab/MME"
TEST = ParquetCopy("mme", "data/test-*.parquet", "MME test", expected=2374, official="set")
HF_PATTERNS = {"mme": (TEST.pattern,)}
COLUMNS = ("question_id", "image", "question", "answer", "category")

RELEASE_DIR = "MME/MME_Benchmark_release_version"
GT_DIR = "MME/eval_tool/Your_Results"
LLAVA_QUESTIONS = "MME/llava_mme.jsonl"
# Subtasks whose release folder has images/ and questions_answers_YN/ (the other nine are flat).
NESTED = frozenset({"artwork", "celebrity", "landmark", "posters", "scene"})
YES_NO = "Please answer yes or no."
_EXTENSIONS = {"jpeg": (".jpg", ".jpeg"), "png": (".png",)}


@dataclass
class Layout:
    """What is collected while reading the copy, written at the end."""

    gt_lines: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    qa_lines: dict[tuple[str, str], list[str]] = field(default_factory=lambda: defaultdict(list))
    llava: list[dict[str, Any]] = field(default_factory=list)
    seen: set[tuple[str, str, str]] = field(default_factory=set)
    images: set[tuple[str, str]] = field(default_factory=set)
    n_unsuffixed: int = 0
    n_misnamed: int = 0


def llava_text(question: str) -> str:
    """LLaVA's prompt for a ground-truth question: the yes/no suffix (either spacing) becomes the short-answer one."""
    for suffix in (f"  {YES_NO}", f" {YES_NO}"):
        if question.endswith(suffix):
            return question[: -len(suffix)] + LLAVA_SUFFIX
    return question + LLAVA_SUFFIX


def image_paths(category: str, name: str) -> tuple[str, str]:
    """(image path, question-file path) of one image, relative to its subtask folder."""
    stem = name.split(".")[0]
    if category in NESTED:
        return f"images/{name}", f"questions_answers_YN/{stem}.txt"
    return name, f"{stem}.txt"


def _checked(row: dict[str, Any], where: str) -> tuple[str, str, str, str]:
    """(subtask, image file name, question, answer) of a row; anything the layout cannot hold is an error."""
    category, qid = str(row["category"]), str(row["question_id"])
    question, answer = str(row["question"]), str(row["answer"])
    if category not in ALL_SUBTASKS:
        raise DataError(f"{where}: category {category!r} is not an MME subtask")
    if qid.split("/")[0] != category:
        raise DataError(f"{where}: question_id {qid!r} does not start with its category {category!r}")
    if answer.strip().lower() not in ("yes", "no"):
        raise DataError(f"{where}: answer {answer!r} is not Yes or No")
    if any(c in question for c in "\t\r\n"):
        raise DataError(f"{where}: question has a tab or line break; the eval tool's lines cannot hold it")
    return category, qid.split("/")[-1], question, answer


def add_row(layout: Layout, root: Path, row: dict[str, Any], where: str) -> None:
    """Collect one row's lines and write its image (once per image)."""
    category, name, question, answer = _checked(row, where)
    key = (category, name, question)
    if key in layout.seen:
        raise DataError(f"{where}: duplicate question {question!r} for {category}/{name} (overlapping parquet files?)")
    layout.seen.add(key)
    image_rel, qa_rel = image_paths(category, name)
    if (category, name) not in layout.images:
        data = image_bytes(row["image"], where)
        layout.n_misnamed += not name.lower().endswith(_EXTENSIONS.get(image_format(data), (name.lower(),)))
        write_file(root / RELEASE_DIR / category / image_rel, data)
        layout.images.add((category, name))
    layout.gt_lines[category].append(f"{name}\t{question}\t{answer}\n")
    layout.qa_lines[(category, qa_rel)].append(f"{question}\t{answer}\n")
    layout.n_unsuffixed += not question.rstrip().endswith(YES_NO)
    qid = f"{category}/{image_rel}"
    layout.llava.append(question_line(qid, qid, llava_text(question), category))


def write_layout(layout: Layout, root: Path) -> None:
    """The eval-tool templates, the per-image question files and LLaVA's question file."""
    for category, lines in layout.gt_lines.items():
        write_file(root / GT_DIR / f"{category}.txt", "".join(lines))
    for (category, qa_rel), lines in layout.qa_lines.items():
        write_file(root / RELEASE_DIR / category / qa_rel, "".join(lines))
    write_jsonl(root / LLAVA_QUESTIONS, layout.llava)


def _report(layout: Layout) -> None:
    TEST.check_count(len(layout.llava))
    missing = [s for s in ALL_SUBTASKS if s not in layout.gt_lines]
    if missing:
        note(f"mme: no questions for subtask(s) {', '.join(missing)}")
    odd = [f"{c}/{q}" for (c, q), lines in layout.qa_lines.items() if len(lines) != 2]
    if odd:
        note(f"mme: {len(odd)} images do not have exactly two questions, e.g. {odd[0]}")
    if layout.n_unsuffixed:
        note(f"mme: {layout.n_unsuffixed} questions lack ' {YES_NO}'; LLaVA's converter cannot join them")
    if layout.n_misnamed:
        note(f"mme: {layout.n_misnamed} images are stored in another format than their file name says")


def prepare_root(source: Path, root: Path) -> None:
    """Write MME (release images and question files, eval-tool templates, LLaVA question file) under ``root``."""
    source, root = Path(source), Path(root)
    paths = TEST.files(source)
    layout = Layout()
    for where, row in iter_rows(paths, "mme questions", COLUMNS):
        add_row(layout, root, row, where)
    write_layout(layout, root)
    _report(layout)
