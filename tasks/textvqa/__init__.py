"""TextVQA val (v0.5.1), as LLaVA-1.5 / TinyLLaVA evaluate it: OCR-token prompts, eval_textvqa.py scoring.

Samples come from LLaVA's question file, one per line, in file order. Its ``question_id`` is the
image id, shared by the questions of one image, so the sample id is ``<question_id>#<k>`` for the
k-th line with that id (k from 0). Each line is matched to its annotation as ``eval_textvqa.py``
matches results: by (image id, the lower-cased question recovered from the prompt); when several
annotations share that pair, the later one wins. A line that matches no annotation, or whose
annotation has other than ten answers, is an error naming the line (the script fails there too).

Scoring does not need the question file (``eval_textvqa.py`` reads only the annotations and the answers,
whose prompts give the questions): without it, ``load_for_scoring`` makes one sample per annotation, the
k-th annotation of an image getting ``<image_id>#<k>``, which are the ids ``load`` gives when the question
file lists the annotations' questions in the annotation file's order (as LLaVA's does).

Protocols (the [tasks.textvqa] tables of ``harness/protocols/*.toml``):

- ``llava15``: the question file's text (question, ``Reference OCR token: ...``, the short-answer
  suffix), ``max_new_tokens`` 128 (``model_vqa_loader.py``).
- ``lmms-eval`` (v0.7 ``textvqa_val``): ``pre_prompt`` + the annotation's question through Python's
  ``str.capitalize()`` (which also lower-cases the rest) + ``post_prompt`` (the same suffix); no OCR
  tokens unless ``ocr`` is true (then LLaVA's tokens from the question file, which come from the same
  Rosetta OCR release as the Hugging Face copy lmms-eval reads); the task sets no token limit, so the
  model's default applies (1024 in lmms-eval's llava model), and the stop string ``ASSISTANT:``.
  Scoring (``scorer``) is the same evaluator either way (lmms-eval strips the generation first; the
  EvalAI processor strips anyway), so the two protocols differ only in what the model is asked.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from harness.data.readers import read_json, require_fields
from harness.errors import DataError
from harness.stats.bootstrap import Estimands
from harness.task import Settings
from harness.types import DataFile, ImageRef, Sample
from tasks.common.base import LlavaTask, header_scorer
from tasks.common.files import image_folder, llava_file, question_lines
from tasks.common.matching import match_in_order
from tasks.common.requests import LLAVA_SUFFIX
from tasks.common.vqa_eval import VQA_ANSWERS
from tasks.textvqa.scorer import OCR_MARKER, estimands, ocr_tokens, recover_question, score_textvqa

LLAVA_QUESTIONS = "textvqa/llava_textvqa_val_v051_ocr.jsonl"
ANNOTATIONS = "textvqa/TextVQA_0.5.1_val.json"
IMAGES_DIR = "textvqa/train_images"
_TEXTVQA_SITE = "https://textvqa.org/dataset"

Key = tuple[Any, str]  # (image id, lower-cased question)


Annotations = tuple[list[dict[str, Any]], dict[Key, dict[str, Any]], Counter[Key]]


def read_annotations(path: Path) -> Annotations:
    """The annotation items in file order, the same keyed as eval_textvqa.py keys them (later wins), and how
    many share each key. Each item gains ``_index``, its position in ``data``."""
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise DataError(f"{path}: expected a JSON object with a 'data' list")
    items: list[dict[str, Any]] = []
    out: dict[Key, dict[str, Any]] = {}
    counts: Counter[Key] = Counter()
    for i, item in enumerate(data["data"]):
        where = f"{path}: data[{i}]"
        if not isinstance(item, dict):
            raise DataError(f"{where}: expected a JSON object")
        require_fields(item, ("question", "image_id", "answers"), where)
        if not isinstance(item["question"], str):
            raise DataError(f"{where}: 'question' is not a string")
        key = (item["image_id"], item["question"].lower())
        items.append({**item, "_index": i})
        out[key] = items[-1]
        counts[key] += 1
    return items, out, counts


def _checked_answers(annotation: Mapping[str, Any], path: Path) -> list[str]:
    answers = annotation["answers"]
    where = f"{path}: data[{annotation['_index']}] (question_id {annotation.get('question_id')})"
    if not isinstance(answers, list) or len(answers) != VQA_ANSWERS:
        count = len(answers) if isinstance(answers, list) else "no list of"
        raise DataError(f"{where}: {count} answers; TextVQAAccuracyEvaluator needs exactly {VQA_ANSWERS}")
    if not all(isinstance(a, str) for a in answers):
        raise DataError(f"{where}: answers must be strings")
    return list(answers)


def prompt_question(question_id: str, prompt: str) -> str:
    """The question an answers line's prompt holds; a DataError naming the line's question_id if none."""
    try:
        return recover_question(prompt)
    except ValueError as exc:
        raise DataError(f"answer for question_id {question_id}: {exc}") from exc


@dataclass(frozen=True)
class _Line:
    """What a sample takes from a question-file line (or, without the file, from its annotation)."""

    question_id: str  # LLaVA's question_id: the image id
    occurrence: int  # k: lines with this question_id before this one
    text: str
    image: str
    ocr_tokens: list[str] | None


def _sample(root: Path, line: _Line, annotation: Mapping[str, Any], shared: int) -> Sample:
    """The sample of ``line``, scored against ``annotation`` (the one its key selects; ``shared`` have that key)."""
    return Sample(
        id=f"{line.question_id}#{line.occurrence}",
        question=line.text,
        images=(ImageRef(path=str(root / IMAGES_DIR / line.image), root=str(root)),),
        target=_checked_answers(annotation, root / ANNOTATIONS),
        metadata={
            "question_id": line.question_id,
            "image_id": annotation["image_id"],
            "eval_question": str(annotation["question"]).lower(),
            "raw_question": annotation["question"],
            "annotation_question_id": annotation.get("question_id"),
            "annotation_shared": shared > 1,
            "ocr_tokens": line.ocr_tokens,
        },
    )


class TextVQATask(LlavaTask):
    name = "textvqa"
    description = "TextVQA val 0.5.1 with OCR-token prompts; VQA accuracy after EvalAI answer processing."
    headline = ("accuracy",)
    changelog: ClassVar[dict[str, str]] = {"1": "initial: LLaVA question file + eval_textvqa.py / m4c evaluator"}
    # Both are TextVQAAccuracyEvaluator's arithmetic (lmms-eval's extra strip is a no-op here).
    scorers: ClassVar[dict[str, str]] = dict.fromkeys(("official", "lmms-eval"), "score_accuracy")
    hf_dataset = "lmms-lab/textvqa"
    record_fields: ClassVar[dict[str, tuple[str, ...]]] = {"metadata": ("image_id",)}

    def data_files(self) -> list[DataFile]:
        llava = "LLaVA's question file (question_id = image id, text with the OCR-token line)"
        official = "official TextVQA 0.5.1 val annotations (10 answers per question)"
        images = "TextVQA train/val images (<image_id>.jpg)"
        return [
            llava_file(LLAVA_QUESTIONS, llava, needed_for="run"),  # eval_textvqa.py reads the answers' prompts
            DataFile(path=ANNOTATIONS, description=official, source=f"TextVQA_0.5.1_val.json from {_TEXTVQA_SITE}"),
            image_folder(IMAGES_DIR, images, f"train_val_images.zip from {_TEXTVQA_SITE}"),
        ]

    def load(self, data_root: Path) -> list[Sample]:
        root = Path(data_root)
        jsonl_path, ann_path = root / LLAVA_QUESTIONS, root / ANNOTATIONS
        _, annotations, counts = read_annotations(ann_path)
        occurrences: Counter[str] = Counter()
        samples: list[Sample] = []
        for where, rec in question_lines(jsonl_path):
            text = str(rec["text"])
            try:
                question = recover_question(text)
            except ValueError as exc:
                raise DataError(f"{where}: {exc}") from exc
            key = (rec["question_id"], question)
            annotation = annotations.get(key)
            if annotation is None:
                raise DataError(
                    f"{where}: no annotation in {ann_path} for image_id {rec['question_id']!r} "
                    f"and question {question!r}"
                )
            qid = str(rec["question_id"])
            line = _Line(qid, occurrences[qid], text, str(rec["image"]), ocr_tokens(text))
            samples.append(_sample(root, line, annotation, counts[key]))
            occurrences[qid] += 1
        return samples

    def load_for_scoring(self, data_root: Path) -> list[Sample]:
        """One sample per annotation, from the annotations alone (no question file): id ``<image_id>#<k>`` for
        the k-th annotation of that image, question the annotation's, target the ten answers of the later
        annotation with the same (image id, lower-cased question), as eval_textvqa.py's dict keeps it. The
        samples have no OCR tokens, so they serve to score answers, not to build LLaVA's requests."""
        root = Path(data_root)
        items, annotations, counts = read_annotations(root / ANNOTATIONS)
        occurrences: Counter[str] = Counter()
        samples: list[Sample] = []
        for item in items:
            key = (item["image_id"], item["question"].lower())
            qid = str(item["image_id"])
            line = _Line(qid, occurrences[qid], str(item["question"]), f"{qid}.jpg", None)
            samples.append(_sample(root, line, annotations[key], counts[key]))
            occurrences[qid] += 1
        return samples

    def statistics(self, records: Sequence[Mapping[str, Any]]) -> Estimands:
        return estimands(records)

    def match_answers(self, samples: Sequence[Sample], records: Iterable[dict[str, Any]]) -> dict[str, str]:
        """Join answers by (question_id, question recovered from the prompt); without a prompt, by occurrence.

        The k-th answer of a key goes to the k-th sample of that key; extra answers overwrite the last
        one (later wins). Unknown question_ids are ignored; a known one with an unreadable prompt is an error.
        """
        return match_in_order(samples, records, lambda s: str(s.metadata["eval_question"]), prompt_question)

    def lmms_eval_question(self, sample: Sample, settings: Settings) -> str:
        """The annotation's question through ``str.capitalize()``, then LLaVA's OCR tokens if ``ocr`` is true."""
        question = str(sample.metadata["raw_question"]).capitalize()
        if not settings.get("ocr"):
            return question
        return f"{question}\n{OCR_MARKER}{', '.join(sample.metadata.get('ocr_tokens') or [])}"

    score_accuracy = header_scorer(score_textvqa, header_as_args=True)


__all__ = ["ANNOTATIONS", "LLAVA_QUESTIONS", "LLAVA_SUFFIX", "TextVQATask"]
