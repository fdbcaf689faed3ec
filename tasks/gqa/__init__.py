"""GQA testdev-balanced, as LLaVA-1.5 / TinyLLaVA evaluate it (LLaVA question file + official eval).

Protocols (the [tasks.gqa] tables of ``harness/protocols/*.toml``):

- ``llava15``: the question file's text (question + "\\nAnswer the question using a single word or
  phrase."), ``max_new_tokens`` 128, the official scorer (``tasks/gqa/scorer.py``).
- ``lmms-eval`` (v0.7, ``tasks/gqa/gqa.yaml``): ``pre_prompt`` + the official question + ``post_prompt``
  (the same suffix, so the same prompt), ``max_new_tokens`` 16, exact match after strip, lower-case
  and deletion of ASCII punctuation; accuracy only.

Scoring reads only the official questions file, as ``eval.py`` does; LLaVA's question file is for running
(``load_for_scoring`` builds the samples without it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from harness.data.readers import read_json, require_fields
from harness.errors import DataError
from harness.stats.bootstrap import Estimands
from harness.types import DataFile, ImageRef, Sample
from tasks.common.base import LlavaTask, header_scorer
from tasks.common.files import image_folder, llava_file, unique_question_lines
from tasks.gqa.scorer import estimands, score_gqa, score_gqa_lmms_eval, steps_number, words_number

LLAVA_QUESTIONS = "gqa/llava_gqa_testdev_balanced.jsonl"
OFFICIAL_QUESTIONS = "gqa/data/testdev_balanced_questions.json"
IMAGES_DIR = "gqa/data/images"
_GQA_SITE = "https://cs.stanford.edu/people/dorarad/gqa/download.html"
_QUESTION_FIELDS = ("question", "answer", "imageId", "isBalanced", "types", "semantic", "groups")


def _official_metadata(question: Mapping[str, Any], where: str, index: int) -> dict[str, Any]:
    """The fields of one official question that scoring needs; a missing field names ``where``."""
    if not isinstance(question, Mapping):
        raise DataError(f"{where}: expected a JSON object")
    require_fields(dict(question), _QUESTION_FIELDS, where)
    for part in ("types", "groups"):
        if not isinstance(question[part], Mapping):
            raise DataError(f"{where}: '{part}' is not a JSON object")
    require_fields(question["types"], ("structural", "semantic", "detailed"), f"{where} types")
    require_fields(question["groups"], ("global",), f"{where} groups")
    if not isinstance(question["answer"], str):  # eval.py compares strings: any other value scores every answer wrong
        raise DataError(f"{where}: 'answer' must be a string, got {type(question['answer']).__name__}")
    try:
        steps = steps_number(question["semantic"])
    except (KeyError, TypeError) as exc:
        raise DataError(f"{where}: malformed 'semantic' program ({exc!r})") from exc
    return {
        "imageId": question["imageId"],
        "structural": question["types"]["structural"],
        "semantic": question["types"]["semantic"],
        "detailed": question["types"]["detailed"],
        "global_group": question["groups"]["global"],
        "words": words_number(question["question"]),
        "steps": steps,
        "balanced": bool(question["isBalanced"]),
        "question_index": index,
        "raw_question": str(question["question"]),
    }


def _read_questions(path: Path) -> dict[str, Any]:
    """The official questions file: a JSON object keyed by question id."""
    questions = read_json(path)
    if not isinstance(questions, dict):
        raise DataError(f"{path}: expected a JSON object keyed by question id")
    return questions


class GQATask(LlavaTask):
    name = "gqa"
    description = "GQA testdev-balanced: compositional VQA on real images, exact-match accuracy."
    headline = ("accuracy",)
    changelog: ClassVar[dict[str, str]] = {
        "1": "initial: LLaVA conversion + official testdev-balanced eval; lmms-eval protocol (prompt, exact_match)"
    }
    scorers: ClassVar[dict[str, str]] = {"official": "score_official", "lmms-eval": "score_lmms_eval"}
    hf_dataset = "lmms-lab/GQA"
    record_fields: ClassVar[dict[str, tuple[str, ...]]] = {"metadata": ("imageId", "structural")}

    def data_files(self) -> list[DataFile]:
        llava = "LLaVA's question file (question_id, image, text with the short-answer suffix)"
        official = "official GQA testdev-balanced questions with answers and types"
        return [
            llava_file(LLAVA_QUESTIONS, llava, needed_for="run"),  # the official eval.py reads the questions below
            DataFile(path=OFFICIAL_QUESTIONS, description=official, source=f"GQA questions1.2.zip from {_GQA_SITE}"),
            image_folder(IMAGES_DIR, "GQA images (<imageId>.jpg)", f"GQA images.zip from {_GQA_SITE}"),
        ]

    def load(self, data_root: Path) -> list[Sample]:
        root = Path(data_root)
        jsonl_path = root / LLAVA_QUESTIONS
        questions_path = root / OFFICIAL_QUESTIONS
        questions = _read_questions(questions_path)
        index = {qid: i for i, qid in enumerate(questions)}
        samples: list[Sample] = []
        for where, rec in unique_question_lines(jsonl_path):
            qid = str(rec["question_id"])
            question = questions.get(qid)
            if question is None:
                raise DataError(f"{where}: question_id {qid} is not in {questions_path}")
            metadata = _official_metadata(question, f"{questions_path}: question {qid}", index[qid])
            samples.append(
                Sample(
                    id=qid,
                    question=str(rec["text"]),
                    images=(ImageRef(path=str(root / IMAGES_DIR / str(rec["image"])), root=str(root)),),
                    target=question["answer"],
                    metadata=metadata,
                )
            )
        return samples

    def load_for_scoring(self, data_root: Path) -> list[Sample]:
        """Every official question, in file order, from the official file alone (what ``eval.py`` reads): id =
        question id (the answers' question_id), question the official text. These samples score answers only
        (they lack LLaVA's suffix); ``load`` gives the same ids, targets and metadata for the lines it lists."""
        root = Path(data_root)
        questions_path = root / OFFICIAL_QUESTIONS
        questions = _read_questions(questions_path)
        samples: list[Sample] = []
        for index, (qid, question) in enumerate(questions.items()):
            metadata = _official_metadata(question, f"{questions_path}: question {qid}", index)
            image = f"{question['imageId']}.jpg"
            samples.append(
                Sample(
                    id=str(qid),
                    question=str(question["question"]),
                    images=(ImageRef(path=str(root / IMAGES_DIR / image), root=str(root)),),
                    target=question["answer"],
                    metadata=metadata,
                )
            )
        return samples

    score_official = header_scorer(score_gqa, header_as_args=True)  # the official eval.py
    score_lmms_eval = header_scorer(score_gqa_lmms_eval, header_as_args=True)  # lmms-eval's exact match

    def statistics(self, records: Sequence[Mapping[str, Any]]) -> Estimands:
        return estimands(records)

    def subset_stratum(self, sample: Sample) -> str:
        """``--limit`` subsets keep the structural types (verify, query, choose, logical, compare) in proportion."""
        return str(sample.metadata.get("structural", ""))
