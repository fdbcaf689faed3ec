"""VQA-v2: test-dev as the papers report it (EvalAI submission), and val2014 scored locally by vqaEval.py.

``vqav2`` (test-dev 2015): LLaVA's question file; the answers are private, so ``score`` reports no
metric and ``export`` writes the file LLaVA uploads (``convert_vqav2_for_submission.py``).

``vqav2_val`` (val2014): the official questions and annotations, the LLaVA prompt (question + the
short-answer suffix), and the official scorer with LLaVA's EvalAI processing of the predictions.

Protocols (the [tasks.vqav2] / [tasks.vqav2_val] tables of ``harness/protocols/*.toml``):

- ``llava15``: the question file's text (test-dev) or question + ``\\nAnswer the question using a single
  word or phrase.`` (val), ``max_new_tokens`` 128 (``model_vqa_loader.py``), answers EvalAI-processed.
- ``lmms-eval`` (v0.7): ``pre_prompt`` + question + ``post_prompt`` (the same suffix), ``max_new_tokens``
  16. val: strip, then EvalAI's punctuation and digit/article steps on the prediction and all ten
  answers, always (so ``Yes.`` against ten ``yes`` scores 1, where vqaEval.py on the raw prediction
  gives 0). test-dev: the answer lmms-eval would upload (punctuation and digit/article steps only, no
  comma / ``?`` deletion and no ``'s`` split: ``red,white`` -> ``red white``, LLaVA's ``redwhite``).
  lmms-eval revisions after v0.7 set ``post_prompt`` to "" for vqav2_val; override it if you need those.

Duplicate question ids in a question or annotation file are an error (the official loaders would
silently keep the later one); in an answers file the later answer wins, as LLaVA's dict-based
converter does.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from harness.data.readers import read_json, require_fields
from harness.errors import DataError
from harness.judging.contract import Judge
from harness.stats.bootstrap import Estimands
from harness.task import Settings
from harness.types import DataFile, ImageRef, Response, Sample, TaskResult
from tasks.common.base import LlavaTask
from tasks.common.files import image_folder, llava_file, unique_question_lines
from tasks.common.requests import LLAVA_SUFFIX, with_image
from tasks.common.vqa_eval import VQA_ANSWERS
from tasks.vqav2.scorer import estimands, score_test_dev, score_val, write_submission

TEST_DEV_QUESTIONS = "vqav2/llava_vqav2_mscoco_test-dev2015.jsonl"
TEST_QUESTIONS = "vqav2/llava_vqav2_mscoco_test2015.jsonl"
TEST_IMAGES = "vqav2/test2015"
VAL_QUESTIONS = "vqav2/v2_OpenEnded_mscoco_val2014_questions.json"
VAL_ANNOTATIONS = "vqav2/v2_mscoco_val2014_annotations.json"
VAL_IMAGES = "vqav2/val2014"
_VQA_SITE = "https://visualqa.org/download.html"
_HF_DATASET = "lmms-lab/VQAv2"


def val_image_name(image_id: int) -> str:
    """COCO's file name for a val2014 image id."""
    return f"COCO_val2014_{int(image_id):012d}.jpg"


class VQAv2Task(LlavaTask):
    name = "vqav2"
    description = "VQA-v2 test-dev 2015: no local score; export the EvalAI submission (challenge 830)."
    headline = ()
    changelog: ClassVar[dict[str, str]] = {"1": "initial: LLaVA question file, convert_vqav2_for_submission export"}
    scorers: ClassVar[dict[str, str]] = {"submission": "score_submission"}
    export_filename = "vqav2_test-dev_submission.json"
    hf_dataset = _HF_DATASET

    def data_files(self) -> list[DataFile]:
        test_dev = "LLaVA's test-dev question file (question_id, image, text with the short-answer suffix)"
        test = "LLaVA's test2015 question file: every test question, for the submission file"
        images = "COCO test2015 images (COCO_test2015_<12-digit id>.jpg)"
        return [
            llava_file(TEST_DEV_QUESTIONS, test_dev),
            llava_file(TEST_QUESTIONS, test),
            image_folder(TEST_IMAGES, images, "http://images.cocodataset.org/zips/test2015.zip"),
        ]

    def load(self, data_root: Path) -> list[Sample]:
        root = Path(data_root)
        path = root / TEST_DEV_QUESTIONS
        samples: list[Sample] = []
        for _, rec in unique_question_lines(path):
            text = str(rec["text"])
            samples.append(
                Sample(
                    id=str(rec["question_id"]),
                    question=text,
                    images=(ImageRef(path=str(root / TEST_IMAGES / str(rec["image"])), root=str(root)),),
                    metadata={
                        "question_id": rec["question_id"],
                        "raw_question": text.removesuffix(LLAVA_SUFFIX),
                        "category": rec.get("category", ""),
                    },
                )
            )
        return samples

    def score_submission(
        self, samples: Sequence[Sample], responses: Mapping[str, Response], settings: Settings, judge: Judge | None
    ) -> TaskResult:
        """No metric: each answer as the protocol's ``submission_processor`` would upload it."""
        return score_test_dev(samples, responses, settings, self.name, self.version)

    def export(
        self, samples: Sequence[Sample], responses: Mapping[str, Response], data_root: Path, output: Path
    ) -> Path:
        """LLaVA's upload: every test2015 question in file order, EvalAI-processed answers, "" when unanswered.

        The protocol does not reach ``export``: the file is always LLaVA's (what the papers uploaded).
        """
        written, _ = write_submission(samples, responses, Path(data_root) / TEST_QUESTIONS, Path(output))
        return written

    def prepare(self, source: Path, root: Path) -> None:
        from tasks.vqav2.prepare import prepare_root

        prepare_root(source, root, splits=("testdev", "test"))

    def write_demo(self, root: Path, seed: int) -> None:
        from tasks.vqav2.demo import write_test_demo

        write_test_demo(root, seed)


def _by_question_id(items: Any, path: Path, key: str, fields: tuple[str, ...]) -> dict[Any, dict[str, Any]]:
    if not isinstance(items, list):
        raise DataError(f"{path}: '{key}' is not a list")
    out: dict[Any, dict[str, Any]] = {}
    for i, item in enumerate(items):
        where = f"{path}: {key}[{i}]"
        if not isinstance(item, dict):
            raise DataError(f"{where}: expected a JSON object")
        require_fields(item, fields, where)
        if item["question_id"] in out:
            raise DataError(f"{where}: duplicate question_id {item['question_id']}")
        out[item["question_id"]] = item
    return out


_DICT, _STR = {dict}, {str}


def _answer_records(annotation: Mapping[str, Any], path: Path, qid: Any) -> tuple[list[str], list[list[Any]] | None]:
    """The ten answer texts and, per answer, what else vqaEval.py's dict comparison sees: (confidence, id).

    The records are None when those pairs are all distinct (the official files: ids 1-10). Then no two answer
    dicts are equal, so each answer leaves out only itself, as it does with no records at all; keeping them
    would add ten small lists per question to every sample and samples-log line.
    """
    answers = annotation["answers"]
    if not isinstance(answers, list) or len(answers) != VQA_ANSWERS:
        count = len(answers) if isinstance(answers, list) else "no list of"
        raise DataError(
            f"{path}: annotation for question_id {qid}: {count} answers; the VQA evaluator needs exactly {VQA_ANSWERS}"
        )
    texts = [answer.get("answer") for answer in answers] if set(map(type, answers)) == _DICT else None
    if texts is None or set(map(type, texts)) != _STR:
        for j, answer in enumerate(answers):
            if not isinstance(answer, dict) or not isinstance(answer.get("answer"), str):
                raise DataError(f"{path}: annotation for question_id {qid}: answers[{j}] has no 'answer' string")
    if _all_distinct([answer.get("answer_id") for answer in answers]):  # the official files: ids 1-10
        return texts, None
    pairs = [(answer.get("answer_confidence"), answer.get("answer_id")) for answer in answers]
    return texts, None if _all_distinct(pairs) else [list(pair) for pair in pairs]


def _all_distinct(keys: list[Any]) -> bool:
    """Whether no two keys are equal; False when one is unhashable (then compared as the official dicts are)."""
    try:
        return len(set(keys)) == len(keys)
    except TypeError:
        return False


def _read_container(path: Path, key: str) -> Any:
    data = read_json(path)
    if not isinstance(data, dict) or key not in data:
        raise DataError(f"{path}: expected a JSON object with '{key}'")
    return data[key]


class VQAv2ValTask(LlavaTask):
    name = "vqav2_val"
    description = "VQA-v2 val2014 scored locally with the official vqaEval.py (LLaVA EvalAI-processed answers)."
    headline = ("overall",)
    changelog: ClassVar[dict[str, str]] = {"1": "initial: official questions/annotations, vqaEval.py scoring"}
    record_fields: ClassVar[dict[str, tuple[str, ...]]] = {"metadata": ("image_id", "answer_type")}
    # Both name the per-question rules of tasks/vqav2/scorer.py, which reads ``scorer`` itself.
    scorers: ClassVar[dict[str, str]] = dict.fromkeys(("official", "lmms-eval"), "score_vqa")
    hf_dataset = _HF_DATASET

    def data_files(self) -> list[DataFile]:
        return [
            DataFile(
                path=VAL_QUESTIONS,
                description="official VQA-v2 val2014 open-ended questions",
                source=f"Questions_Val_mscoco.zip from {_VQA_SITE}",
            ),
            DataFile(
                path=VAL_ANNOTATIONS,
                description="official VQA-v2 val2014 annotations (10 answers, question and answer types)",
                source=f"Annotations_Val_mscoco.zip from {_VQA_SITE}",
            ),
            image_folder(
                VAL_IMAGES,
                "COCO val2014 images (COCO_val2014_<12-digit id>.jpg)",
                "http://images.cocodataset.org/zips/val2014.zip",
            ),
        ]

    def load(self, data_root: Path) -> list[Sample]:
        root = Path(data_root)
        q_path, a_path = root / VAL_QUESTIONS, root / VAL_ANNOTATIONS
        questions = _by_question_id(
            _read_container(q_path, "questions"), q_path, "questions", ("question_id", "image_id", "question")
        )
        annotations = _by_question_id(
            _read_container(a_path, "annotations"),
            a_path,
            "annotations",
            ("question_id", "image_id", "question_type", "answer_type", "answers"),
        )
        extra = [qid for qid in annotations if qid not in questions]
        if extra:
            raise DataError(f"{a_path}: {len(extra)} annotation(s) have no question in {q_path}, e.g. {extra[0]}")
        samples: list[Sample] = []
        root_text, image_dir = str(root), str(root / VAL_IMAGES)  # joined as strings: no Path per sample
        # Equal strings and an image's reference are shared: 2.1 M answer texts hold a few thousand distinct
        # values, so memory, the sample cache's pickle and freeing at exit all shrink.
        shared: dict[str, str] = {}

        def one(value: Any) -> Any:
            return shared.setdefault(value, value) if type(value) is str else value

        images: dict[Any, tuple[ImageRef, ...]] = {}
        for qid, question in questions.items():
            annotation = annotations.get(qid)
            if annotation is None:
                raise DataError(f"{a_path}: no annotation for question_id {qid} of {q_path}")
            texts, records = _answer_records(annotation, a_path, qid)
            image_id = question["image_id"]
            image = images.get(image_id)
            if image is None:
                image = images[image_id] = (
                    ImageRef(path=os.path.join(image_dir, val_image_name(image_id)), root=root_text),
                )
            text = one(str(question["question"]))
            samples.append(
                Sample(
                    id=str(qid),
                    question=text,
                    images=image,
                    target=[one(t) for t in texts],
                    metadata={
                        "question_id": qid,
                        "image_id": image_id,
                        "raw_question": text,
                        "question_type": one(annotation["question_type"]),
                        "answer_type": one(annotation["answer_type"]),
                        "multiple_choice_answer": one(annotation.get("multiple_choice_answer")),
                        **({"answer_records": records} if records is not None else {}),
                    },
                )
            )
        return samples

    def llava_prompt(self, sample: Sample, settings: Settings) -> str:
        """LLaVA's prompt for a VQA question: the official question + the short-answer suffix."""
        return with_image(sample.metadata["raw_question"] + LLAVA_SUFFIX)

    def score_vqa(
        self, samples: Sequence[Sample], responses: Mapping[str, Response], settings: Settings, judge: Judge | None
    ) -> TaskResult:
        """vqaEval.py (``official``) or lmms-eval's rules, after the ``prediction_processor``."""
        return score_val(samples, responses, settings, *self.header)

    def statistics(self, records: Sequence[Mapping[str, Any]]) -> Estimands:
        return estimands(records)

    def subset_stratum(self, sample: Sample) -> str:
        """``--limit`` subsets keep the answer types (yes/no, number, other) in proportion."""
        return str(sample.metadata.get("answer_type") or "")

    def prepare(self, source: Path, root: Path) -> None:
        from tasks.vqav2.prepare import prepare_root

        prepare_root(source, root, splits=("validation",))

    def write_demo(self, root: Path, seed: int) -> None:
        from tasks.vqav2.demo import write_val_demo

        write_val_demo(root, seed)
