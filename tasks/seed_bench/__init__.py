"""SEED-Bench, image part (question types 1-9), as LLaVA-1.5 evaluates it with ``convert_seed_for_submission.py``.

Data (under the data root, LLaVA's ``playground/data/eval/seed_bench`` layout):

- ``seed_bench/SEED-Bench.json``: the official annotations, ``{"question_type": {name: id}, "questions":
  [{question_id, question, choice_a..choice_d, answer, data_id, data_type, question_type_id, ...}]}``;
  the samples are its questions with ``data_type == "image"``, in its order. It is all ``harness score``
  needs (``load_for_scoring``).
- ``seed_bench/llava-seed-bench.jsonl``: LLaVA's question file (``question_id`` as a number, ``image``
  relative to ``seed_bench/``, ``text`` = question, ``A. ..`` to ``D. ..`` lines and "Answer with the
  option's letter from the given choices directly."); only a run reads it (for the prompts). Its video
  lines (frames under ``SEED-Bench-video-image/``) are not used.
- ``seed_bench/SEED-Bench-image/``: the image files (``data_id``), only to run a model.

Protocols (the [tasks.seed_bench] tables of ``harness/protocols/*.toml``): ``llava15`` is
``model_vqa_loader`` on the question file (128 new tokens) scored by the converter's image accuracy;
``lmms-eval`` is lmms-eval's ``seedbench`` prompt (built from the annotations) and its ``seed_image``.

Answers files are joined as the converter looks answers up: under ``int(question_id)`` of each question,
in a dict of the answers' raw ``question_id`` values (a later line wins).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from harness.data.readers import read_json
from harness.errors import DataError
from harness.stats.bootstrap import Estimands
from harness.types import DataFile, ImageRef, Sample
from tasks.common.base import LlavaTask, header_scorer
from tasks.common.files import image_folder, llava_file, question_lines
from tasks.seed_bench import scorer
from tasks.seed_bench.scorer import lookup_key

ANNOTATIONS = "seed_bench/SEED-Bench.json"
LLAVA_QUESTIONS = "seed_bench/llava-seed-bench.jsonl"
IMAGE_ROOT = "seed_bench"
IMAGES_DIR = "seed_bench/SEED-Bench-image"
OPTIONS = ("A", "B", "C", "D")
QUESTION_FIELDS = ("question_id", "question", "choice_a", "choice_b", "choice_c", "choice_d", "answer",
                   "data_id", "data_type", "question_type_id")  # fmt: skip
_SEED = "https://huggingface.co/datasets/AILab-CVC/SEED-Bench (SEED-Bench.json, SEED-Bench-image.zip)"


def read_annotations(path: Path) -> tuple[dict[int, str], list[dict[str, Any]]]:
    """Question type names by id and the image questions of SEED-Bench.json (each checked for its fields)."""
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("questions"), list):
        raise DataError(f"{path}: expected a JSON object with a 'questions' list")
    types = data.get("question_type")
    if not isinstance(types, dict):
        raise DataError(f"{path}: expected a 'question_type' object (name -> id)")
    names = {int(type_id): str(name) for name, type_id in types.items()}
    questions = []
    for number, question in enumerate(data["questions"]):
        where = f"{path}: question {number}"
        if not isinstance(question, dict):
            raise DataError(f"{where}: not a JSON object")
        lacking = [f for f in QUESTION_FIELDS if f not in question]
        if lacking:
            raise DataError(f"{where}: missing field(s) {', '.join(lacking)}")
        if question["data_type"] != "image":
            continue
        if int(question["question_type_id"]) not in names:
            raise DataError(f"{where}: question_type_id {question['question_type_id']} is not in 'question_type'")
        questions.append(question)
    return names, questions


def options_text(question: Mapping[str, Any]) -> str:
    """The question with its four options on lines ``A. ..`` to ``D. ..`` (lmms-eval's and LLaVA's layout)."""
    lines = [str(question["question"])]
    lines += [f"{letter}. {question[f'choice_{letter.lower()}']}" for letter in OPTIONS]
    return "\n".join(lines)


class SeedBenchTask(LlavaTask):
    name = "seed_bench"
    description = "SEED-Bench image part: 4-option multiple choice, accuracy overall and per question type."
    headline = ("accuracy",)
    changelog: ClassVar[dict[str, str]] = {
        "1": "initial: LLaVA question file + convert_seed_for_submission.py; lmms-eval seedbench (seed_image)"
    }
    scorers: ClassVar[dict[str, str]] = {"official": "score_official", "lmms-eval": "score_lmms_eval"}
    hf_dataset = "lmms-lab/SEED-Bench"

    def data_files(self) -> list[DataFile]:
        return [
            DataFile(path=ANNOTATIONS, description="official SEED-Bench annotations (questions, types)", source=_SEED),
            llava_file(LLAVA_QUESTIONS, "LLaVA's SEED-Bench question file (question_id, image, text)", "run"),
            image_folder(IMAGES_DIR, "SEED-Bench images (data_id)", _SEED),
        ]

    def _samples(self, root: Path, prompts: Mapping[str, Mapping[str, Any]] | None) -> list[Sample]:
        path = root / ANNOTATIONS
        names, questions = read_annotations(path)
        samples: list[Sample] = []
        seen: set[str] = set()
        for question in questions:
            qid = str(question["question_id"])
            if qid in seen:
                raise DataError(f"{path}: duplicate question_id {qid}")
            seen.add(qid)
            line = None
            if prompts is not None:
                line = prompts.get(qid)
                if line is None:
                    raise DataError(f"{root / LLAVA_QUESTIONS}: no line for image question {qid} of {path}")
            image = str(line["image"]) if line is not None else f"SEED-Bench-image/{question['data_id']}"
            type_id = int(question["question_type_id"])
            samples.append(
                Sample(
                    id=qid,
                    question=str(line["text"]) if line is not None else options_text(question),
                    images=(ImageRef(path=str(root / IMAGE_ROOT / image), root=str(root)),),
                    target=str(question["answer"]),
                    metadata={
                        "question_id": question["question_id"],
                        "question_type_id": type_id,
                        "question_type": names[type_id],
                        "raw_question": options_text(question),
                        "data_id": str(question["data_id"]),
                    },
                )
            )
        return samples

    def load(self, data_root: Path) -> list[Sample]:
        root = Path(data_root)
        prompts = {str(rec["question_id"]): rec for _, rec in question_lines(root / LLAVA_QUESTIONS)}
        return self._samples(root, prompts)

    def load_for_scoring(self, data_root: Path) -> list[Sample]:
        """The image questions of SEED-Bench.json alone (what the converter reads); the prompt is the
        question with its options, not LLaVA's text: these samples score answers only."""
        return self._samples(Path(data_root), None)

    def match_answers(self, samples: Sequence[Sample], records: Iterable[dict[str, Any]]) -> dict[str, str]:
        """The converter's join: answers keyed by their raw ``question_id`` (later wins), looked up under
        ``int(question_id)`` of each question; an id written as a string does not match a numeric one."""
        results: dict[Any, str] = {}
        for rec in records:
            key = rec.get("question_id")
            if isinstance(key, list | dict):
                continue  # unhashable: the script would fail; such a line answers nothing here
            results[key] = str(rec.get("text", ""))
        out: dict[str, str] = {}
        for sample in samples:
            key = lookup_key(sample.metadata["question_id"])
            if key in results:
                out[sample.id] = results[key]
        return out

    def subset_stratum(self, sample: Sample) -> str:
        """``--limit`` subsets keep the question types in proportion."""
        return str(sample.metadata["question_type_id"])

    def statistics(self, records: Sequence[Mapping[str, Any]]) -> Estimands:
        return scorer.estimands(records)

    score_official = header_scorer(scorer.score_official)  # convert_seed_for_submission.py
    score_lmms_eval = header_scorer(scorer.score_lmms_eval)  # lmms-eval's seed_image
