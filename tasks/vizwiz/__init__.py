"""VizWiz VQA: test-dev as the papers report it (EvalAI submission), and val scored locally.

Two tasks, shaped like ``vqav2`` / ``vqav2_val``:

``vizwiz`` (test-dev, the split LLaVA-1.5 reports): LLaVA's question file ``llava_test.jsonl``; the
answers are private, so ``score`` reports no metric and ``export`` writes the file LLaVA uploads
(``convert_vizwiz_for_submission.py``: ``[{"image", "answer"}]`` in question-file order, answers
through the EvalAI answer processor).

``vizwiz_val``: VizWiz's official ``val.json`` (ten answers with ``answer_confidence``, ``answer_type``,
``answerable``), LLaVA's prompt (question + the "Unanswerable" and short-answer lines, as in
``llava_test.jsonl``), and the VizWiz evaluator's accuracy (``tasks/vizwiz/scorer.py``). Sample id =
the image name without ``.jpg`` (a VizWiz question has no id of its own: one question per image).

Protocols (the [tasks.vizwiz] / [tasks.vizwiz_val] tables of ``harness/protocols/*.toml``):

- ``llava15``: the question file's text (test-dev) or question + :data:`VIZWIZ_SUFFIX` (val),
  ``max_new_tokens`` 128 (``model_vqa_loader.py``), answers EvalAI-processed.
- ``lmms-eval`` (v0.7.3, ``vizwiz_vqa_val`` / ``vizwiz_vqa_test``): ``question.capitalize()`` (which
  also lower-cases the rest of the question) + the same two lines as ``post_prompt``; no
  ``max_new_tokens`` in the task, so the llava model's 1024; stop at ``ASSISTANT:``.

Answers files: LLaVA's answers JSONL (``question_id``: test-dev the question file's id; val the image
name, with or without ``.jpg``), or for ``vizwiz_val`` a VizWiz results file (a JSON array of
``{"image", "answer"}``, what the evaluator and the server read). Duplicate images in ``val.json`` or
question ids in ``llava_test.jsonl`` are an error.
"""

from __future__ import annotations

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
from tasks.common.requests import setting_choice
from tasks.vizwiz.scorer import EXPORT_NAME, estimands, score_test_dev, score_val, write_submission

TEST_QUESTIONS = "vizwiz/llava_test.jsonl"
TEST_ANNOTATIONS = "vizwiz/test.json"
TEST_IMAGES = "vizwiz/test"
VAL_ANNOTATIONS = "vizwiz/val.json"
VAL_IMAGES = "vizwiz/val"
VIZWIZ_SUFFIX = (
    "\nWhen the provided information is insufficient, respond with 'Unanswerable'."
    "\nAnswer the question using a single word or phrase."
)  # what llava_test.jsonl appends to every question (and lmms-eval's post_prompt)
_ANNOTATIONS_ZIP = "https://vizwiz.cs.colorado.edu/VizWiz_final/vqa_data/Annotations.zip"
_HF_DATASET = "lmms-lab/VizWiz-VQA"


class VizWizTask(LlavaTask):
    name = "vizwiz"
    description = "VizWiz VQA test-dev: no local score; export the EvalAI submission (challenge 2185)."
    headline = ()
    changelog: ClassVar[dict[str, str]] = {"1": "initial: LLaVA question file, convert_vizwiz_for_submission export"}
    scorers: ClassVar[dict[str, str]] = {"submission": "score_submission"}
    export_filename = EXPORT_NAME
    hf_dataset = _HF_DATASET

    def data_files(self) -> list[DataFile]:
        return [
            llava_file(TEST_QUESTIONS, "LLaVA's test question file (question_id, image, question + two answer lines)"),
            DataFile(
                path=TEST_ANNOTATIONS,
                needed_for="run",
                description="VizWiz's test questions (image, question): what llava_test.jsonl was made from",
                source=f"Annotations.zip from {_ANNOTATIONS_ZIP}",
            ),
            image_folder(TEST_IMAGES, "VizWiz test images (VizWiz_test_<8 digits>.jpg)",
                         "https://vizwiz.cs.colorado.edu/VizWiz_final/images/test.zip"),
        ]  # fmt: skip

    def load(self, data_root: Path) -> list[Sample]:
        root = Path(data_root)
        samples: list[Sample] = []
        for _, rec in unique_question_lines(root / TEST_QUESTIONS):
            text = str(rec["text"])
            samples.append(
                Sample(
                    id=str(rec["question_id"]),
                    question=text,
                    images=(ImageRef(path=str(root / TEST_IMAGES / str(rec["image"])), root=str(root)),),
                    metadata={
                        "question_id": rec["question_id"],
                        "image": str(rec["image"]),
                        "raw_question": text.removesuffix(VIZWIZ_SUFFIX),
                    },
                )
            )
        return samples

    def lmms_eval_question(self, sample: Sample, settings: Settings) -> str:
        """lmms-eval's ``vizwiz_vqa_doc_to_text``: ``question.capitalize()``."""
        return str(sample.metadata["raw_question"]).capitalize()

    def score_submission(
        self, samples: Sequence[Sample], responses: Mapping[str, Response], settings: Settings, judge: Judge | None
    ) -> TaskResult:
        """No metric: each answer as it would be uploaded (EvalAI-processed: LLaVA's and lmms-eval's upload)."""
        setting_choice(settings, "submission_processor", ("evalai",), "evalai")
        return score_test_dev(samples, responses, self.name, self.version)

    def export(
        self, samples: Sequence[Sample], responses: Mapping[str, Response], data_root: Path, output: Path
    ) -> Path:
        """LLaVA's upload: every question of llava_test.jsonl in file order, EvalAI-processed answers."""
        written, _ = write_submission(samples, responses, Path(data_root) / TEST_QUESTIONS, Path(output))
        return written

    def prepare(self, source: Path, root: Path) -> None:
        from tasks.vizwiz.prepare import prepare_root

        prepare_root(source, root, splits=("test",))

    def write_demo(self, root: Path, seed: int) -> None:
        from tasks.vizwiz.demo import write_test_demo

        write_test_demo(root, seed)


def image_stem(name: Any) -> str:
    """A VizWiz image name without ``.jpg`` (the val sample id)."""
    return str(name).strip().removesuffix(".jpg")


class VizWizValTask(LlavaTask):
    name = "vizwiz_val"
    description = "VizWiz VQA val scored locally with the VizWiz evaluator (LLaVA EvalAI-processed answers)."
    headline = ("overall",)
    changelog: ClassVar[dict[str, str]] = {"1": "initial: official val.json, VizWiz evaluator accuracy"}
    record_fields: ClassVar[dict[str, tuple[str, ...]]] = {"metadata": ("answer_type",)}
    scorers: ClassVar[dict[str, str]] = dict.fromkeys(("official", "lmms-eval"), "score_vqa")
    hf_dataset = _HF_DATASET

    def data_files(self) -> list[DataFile]:
        return [
            DataFile(
                path=VAL_ANNOTATIONS,
                description="VizWiz val annotations (image, question, 10 answers, answer_type, answerable)",
                source=f"Annotations.zip from {_ANNOTATIONS_ZIP}",
            ),
            image_folder(VAL_IMAGES, "VizWiz val images (VizWiz_val_<8 digits>.jpg)",
                         "https://vizwiz.cs.colorado.edu/VizWiz_final/images/val.zip"),
        ]  # fmt: skip

    def load(self, data_root: Path) -> list[Sample]:
        root = Path(data_root)
        path = root / VAL_ANNOTATIONS
        items = read_json(path)
        if not isinstance(items, list):
            raise DataError(f"{path}: expected a JSON array of questions")
        samples: list[Sample] = []
        seen: set[str] = set()
        for i, item in enumerate(items):
            where = f"{path}: [{i}]"
            if not isinstance(item, dict):
                raise DataError(f"{where}: expected a JSON object")
            require_fields(item, ("image", "question", "answers"), where)
            sid = image_stem(item["image"])
            if sid in seen:
                raise DataError(f"{where}: duplicate image {item['image']}")
            seen.add(sid)
            answers = item["answers"]
            if not isinstance(answers, list) or not all(
                isinstance(a, dict) and isinstance(a.get("answer"), str) for a in answers
            ):
                raise DataError(f"{where}: 'answers' must be a list of objects with an 'answer' string")
            question = str(item["question"])
            samples.append(
                Sample(
                    id=sid,
                    question=question + VIZWIZ_SUFFIX,
                    images=(ImageRef(path=str(root / VAL_IMAGES / str(item["image"])), root=str(root)),),
                    target=[a["answer"] for a in answers],
                    metadata={
                        "image": str(item["image"]),
                        "raw_question": question,
                        "answer_type": item.get("answer_type"),
                        "answerable": item.get("answerable"),
                    },
                )
            )
        return samples

    def lmms_eval_question(self, sample: Sample, settings: Settings) -> str:
        """lmms-eval's ``vizwiz_vqa_doc_to_text``: ``question.capitalize()``."""
        return str(sample.metadata["raw_question"]).capitalize()

    def answer_id(self, question_id: Any) -> str | None:
        """An answers line names its question by image name, with or without ``.jpg``."""
        return image_stem(question_id)

    def score_vqa(
        self, samples: Sequence[Sample], responses: Mapping[str, Response], settings: Settings, judge: Judge | None
    ) -> TaskResult:
        """The VizWiz evaluator (``official``) or lmms-eval's rules, after the ``prediction_processor``."""
        return score_val(samples, responses, settings, *self.header)

    def score_path(
        self, path: Path, data_root: Path | None, settings: Settings | None = None, judge: Judge | None = None
    ) -> TaskResult | None:
        """A VizWiz results file (JSON array of ``{"image", "answer"}``); None for any other file."""
        answers = read_results_file(Path(path))
        if answers is None:
            return None
        if data_root is None:
            raise DataError(f"scoring a VizWiz results file needs the data root ({VAL_ANNOTATIONS})")
        samples = self.load(data_root)
        known = {s.id for s in samples}
        responses = {sid: Response(text=text) for sid, text in answers.items() if sid in known}
        result = self.score(samples, responses, settings, judge)
        unknown = len(answers) - len(responses)
        if unknown:
            result.notes.append(f"{Path(path).name}: {unknown} answers name no image of {VAL_ANNOTATIONS}; ignored")
        return result

    def statistics(self, records: Sequence[Mapping[str, Any]]) -> Estimands:
        return estimands(records)

    def subset_stratum(self, sample: Sample) -> str:
        """``--limit`` subsets keep the answer types (other, yes/no, number, unanswerable) in proportion."""
        return str(sample.metadata.get("answer_type") or "")

    def prepare(self, source: Path, root: Path) -> None:
        from tasks.vizwiz.prepare import prepare_root

        prepare_root(source, root, splits=("val",))

    def write_demo(self, root: Path, seed: int) -> None:
        from tasks.vizwiz.demo import write_val_demo

        write_val_demo(root, seed)


def read_results_file(path: Path) -> dict[str, str] | None:
    """The answers of a VizWiz results file by image stem (a later entry wins), or None when ``path`` is
    not one (a JSONL, a folder, another JSON)."""
    if not path.is_file() or path.suffix.lower() != ".json":
        return None
    try:
        data = read_json(path)
    except DataError:
        return None
    if not isinstance(data, list) or not data:
        return None
    if not all(isinstance(x, dict) and "image" in x and "answer" in x for x in data):
        return None
    return {image_stem(x["image"]): str(x["answer"]) for x in data}
