"""POPE (COCO: adversarial, popular, random), as LLaVA-1.5 / TinyLLaVA evaluate it with ``eval_pope.py``.

Data (under the data root, LLaVA's ``playground/data/eval/pope`` layout):

- ``pope/llava_pope_test.jsonl``: LLaVA's question file (``question_id``, ``image``, ``text`` = the POPE
  question + "\\nAnswer the question using a single word or phrase.", ``category`` = the split). The
  official scorer reads it too (an answer's split is its question's ``category``).
- ``pope/coco/coco_pope_<split>.json``: the POPE label files, one JSON object per line (``question_id``,
  ``image``, ``text``, ``label`` yes/no). eval_pope.py pairs the labels with a split's answers by
  position, so the k-th question of a split in the question file has the k-th label line.
- ``pope/val2014/``: the COCO val2014 images (only to run a model).

Protocols (the [tasks.pope] tables of ``harness/protocols/*.toml``): ``llava15`` is
``model_vqa_loader`` on the question file (128 new tokens) scored by ``eval_pope.py``; ``lmms-eval`` is
lmms-eval's ``pope`` (the label file's question + the short-answer suffix, 128 new tokens, its pooled
exact-match metrics).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from harness.data.readers import iter_jsonl, require_fields
from harness.errors import DataError
from harness.stats.bootstrap import Estimands
from harness.types import DataFile, ImageRef, Sample
from tasks.common.base import LlavaTask, header_scorer
from tasks.common.files import image_folder, llava_file, unique_question_lines
from tasks.pope import scorer
from tasks.pope.scorer import SPLITS

LLAVA_QUESTIONS = "pope/llava_pope_test.jsonl"
LABELS_DIR = "pope/coco"
IMAGES_DIR = "pope/val2014"
_POPE_REPO = "https://github.com/AoiDragon/POPE (output/coco)"
_COCO = "COCO val2014 images, https://cocodataset.org (val2014.zip)"


def label_file(split: str) -> str:
    """The label file of one split, relative to the data root."""
    return f"{LABELS_DIR}/coco_pope_{split}.json"


def read_labels(path: Path) -> list[dict[str, Any]]:
    """A label file's lines (each needs ``label``; ``text`` and ``question_id`` are kept when present)."""
    rows = []
    for lineno, rec in iter_jsonl(path):
        require_fields(rec, ("label",), f"{path}:{lineno}")
        rows.append(rec)
    return rows


class PopeTask(LlavaTask):
    name = "pope"
    description = "POPE (COCO adversarial / popular / random): object hallucination yes/no; F1 (eval_pope.py)."
    headline = ("f1",)
    changelog: ClassVar[dict[str, str]] = {"1": "initial: LLaVA question file + eval_pope.py; lmms-eval pope"}
    scorers: ClassVar[dict[str, str]] = {"official": "score_official", "lmms-eval": "score_lmms_eval"}
    hf_dataset = "lmms-lab/POPE"
    record_fields: ClassVar[dict[str, tuple[str, ...]]] = {
        "detail": ("split", "tp", "fp", "fn", "tn", "yes", "in_ratio", "pooled"),
    }

    def data_files(self) -> list[DataFile]:
        labels = [DataFile(path=label_file(s), description=f"POPE {s} labels (JSON lines)", source=_POPE_REPO)
                  for s in SPLITS]  # fmt: skip
        return [
            llava_file(LLAVA_QUESTIONS, "LLaVA's POPE question file (question_id, image, text, category)"),
            *labels,
            image_folder(IMAGES_DIR, "COCO val2014 images the questions name", _COCO),
        ]

    def load(self, data_root: Path) -> list[Sample]:
        root = Path(data_root)
        questions = root / LLAVA_QUESTIONS
        labels = {split: read_labels(root / label_file(split)) for split in SPLITS}
        position = dict.fromkeys(SPLITS, 0)
        samples: list[Sample] = []
        for where, rec in unique_question_lines(questions, ("question_id", "image", "text", "category")):
            split = str(rec["category"])
            if split not in labels:
                raise DataError(f"{where}: category {split!r} is not one of {', '.join(SPLITS)}")
            k = position[split]
            position[split] += 1
            if k >= len(labels[split]):
                raise DataError(f"{where}: {split} question number {k + 1}, but {root / label_file(split)} has only "
                                f"{len(labels[split])} lines (eval_pope.py pairs them by position)")  # fmt: skip
            label = labels[split][k]
            samples.append(
                Sample(
                    id=str(rec["question_id"]),
                    question=str(rec["text"]),
                    images=(ImageRef(path=str(root / IMAGES_DIR / str(rec["image"])), root=str(root)),),
                    target=str(label["label"]),
                    metadata={
                        "category": split,
                        "label_index": k,
                        "raw_question": str(label.get("text", rec["text"])),
                        "image": str(rec["image"]),
                    },
                )
            )
        for split in SPLITS:
            if position[split] != len(labels[split]):
                raise DataError(f"{root / label_file(split)}: {len(labels[split])} labels but {position[split]} "
                                f"{split} questions in {questions}")  # fmt: skip
        return samples

    def lmms_eval_question(self, sample: Sample, settings: Mapping[str, Any]) -> str:
        """``pope_doc_to_text``: the POPE question (the label file's text), stripped."""
        return str(sample.metadata["raw_question"]).strip()

    def subset_stratum(self, sample: Sample) -> str:
        """``--limit`` subsets keep the three splits in proportion."""
        return str(sample.metadata["category"])

    def statistics(self, records: Sequence[Mapping[str, Any]]) -> Estimands:
        return scorer.estimands(records)

    score_official = header_scorer(scorer.score_official)  # eval_pope.py
    score_lmms_eval = header_scorer(scorer.score_lmms_eval)  # lmms-eval's pope
