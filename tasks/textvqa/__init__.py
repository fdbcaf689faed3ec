"""TextVQA val (v0.5.1), as LLaVA-1.5 / TinyLLaVA evaluate it: OCR-token prompts, eval_textvqa.py scoring.

Samples come from LLaVA's question file, one per line, in file order. Its ``question_id`` is the
image id, shared by the questions of one image, so the sample id is ``<question_id>#<k>`` for the
k-th line with that id (k from 0). Each line is matched to its annotation as ``eval_textvqa.py``
matches results: by (image id, the lower-cased question recovered from the prompt); when several
annotations share that pair, the later one wins. A line that matches no annotation, or whose
annotation has other than ten answers, is an error naming the line (the script fails there too).

Protocols (``default_settings``; a protocol file's [tasks.textvqa] table overrides them):

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
from pathlib import Path
from typing import Any, ClassVar

from harness.data.readers import iter_jsonl, read_json, require_fields
from harness.errors import DataError, UsageError
from harness.judging.contract import Judge
from harness.stats.bootstrap import Estimands
from harness.task import Task
from harness.types import (
    DataFile,
    ImageRef,
    Request,
    Response,
    Sample,
    TaskResult,
)
from tasks.common.requests import LLAVA_EVAL_ZIP, LLAVA_SUFFIX, make_request, setting_choice, with_image
from tasks.common.vqa_eval import VQA_ANSWERS
from tasks.textvqa.scorer import OCR_MARKER, estimands, ocr_tokens, recover_question, score_textvqa

LLAVA_QUESTIONS = "textvqa/llava_textvqa_val_v051_ocr.jsonl"
ANNOTATIONS = "textvqa/TextVQA_0.5.1_val.json"
IMAGES_DIR = "textvqa/train_images"
_TEXTVQA_SITE = "https://textvqa.org/dataset"

Key = tuple[Any, str]  # (image id, lower-cased question)


def read_annotations(path: Path) -> tuple[dict[Key, dict[str, Any]], Counter[Key]]:
    """The annotations keyed as eval_textvqa.py keys them (later wins), and how many share each key."""
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise DataError(f"{path}: expected a JSON object with a 'data' list")
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
        out[key] = {**item, "_index": i}
        counts[key] += 1
    return out, counts


def _checked_answers(annotation: Mapping[str, Any], path: Path) -> list[str]:
    answers = annotation["answers"]
    where = f"{path}: data[{annotation['_index']}] (question_id {annotation.get('question_id')})"
    if not isinstance(answers, list) or len(answers) != VQA_ANSWERS:
        count = len(answers) if isinstance(answers, list) else "no list of"
        raise DataError(f"{where}: {count} answers; TextVQAAccuracyEvaluator needs exactly {VQA_ANSWERS}")
    if not all(isinstance(a, str) for a in answers):
        raise DataError(f"{where}: answers must be strings")
    return list(answers)


class TextVQATask(Task):
    name = "textvqa"
    version = "1"
    description = "TextVQA val 0.5.1 with OCR-token prompts; VQA accuracy after EvalAI answer processing."
    judged = False
    headline = ("accuracy",)
    changelog: ClassVar[dict[str, str]] = {"1": "initial: LLaVA question file + eval_textvqa.py / m4c evaluator"}
    default_settings: ClassVar[dict[str, dict[str, Any]]] = {
        "llava15": {"max_new_tokens": 128, "prompt": "llava", "scorer": "official"},
        "lmms-eval": {
            "max_new_tokens": 1024,
            "scorer": "lmms-eval",
            "stop": ["ASSISTANT:"],
            "prompt": "lmms-eval",
            "pre_prompt": "",
            "post_prompt": LLAVA_SUFFIX,
            "ocr": False,
        },
    }
    hf_dataset = "lmms-lab/textvqa"
    record_fields: ClassVar[dict[str, tuple[str, ...]]] = {"metadata": ("image_id",)}

    def data_files(self) -> list[DataFile]:
        return [
            DataFile(
                path=LLAVA_QUESTIONS,
                description="LLaVA's question file (question_id = image id, text with the OCR-token line)",
                source=LLAVA_EVAL_ZIP,
            ),
            DataFile(
                path=ANNOTATIONS,
                description="official TextVQA 0.5.1 val annotations (10 answers per question)",
                source=f"TextVQA_0.5.1_val.json from {_TEXTVQA_SITE}",
            ),
            DataFile(
                path=IMAGES_DIR,
                kind="dir",
                needed_for="run",
                description="TextVQA train/val images (<image_id>.jpg)",
                source=f"train_val_images.zip from {_TEXTVQA_SITE}",
            ),
        ]

    def load(self, data_root: Path) -> list[Sample]:
        root = Path(data_root)
        jsonl_path, ann_path = root / LLAVA_QUESTIONS, root / ANNOTATIONS
        annotations, counts = read_annotations(ann_path)
        occurrences: Counter[str] = Counter()
        samples: list[Sample] = []
        for lineno, rec in iter_jsonl(jsonl_path):
            where = f"{jsonl_path}:{lineno}"
            require_fields(rec, ("question_id", "image", "text"), where)
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
            samples.append(
                Sample(
                    id=f"{qid}#{occurrences[qid]}",
                    question=text,
                    images=(ImageRef(path=str(root / IMAGES_DIR / str(rec["image"]))),),
                    target=_checked_answers(annotation, ann_path),
                    metadata={
                        "question_id": qid,
                        "image_id": annotation["image_id"],
                        "eval_question": question,
                        "raw_question": annotation["question"],
                        "annotation_question_id": annotation.get("question_id"),
                        "annotation_shared": counts[key] > 1,
                        "ocr_tokens": ocr_tokens(text),
                    },
                )
            )
            occurrences[qid] += 1
        return samples

    def statistics(self, records: Sequence[Mapping[str, Any]]) -> Estimands:
        return estimands(records)

    def match_answers(self, samples: Sequence[Sample], records: Iterable[dict[str, Any]]) -> dict[str, str]:
        """Join answers by (question_id, question recovered from the prompt); without a prompt, by occurrence.

        The k-th answer of a key goes to the k-th sample of that key; extra answers overwrite the last
        one (later wins). Unknown question_ids are ignored; a known one with an unreadable prompt is an error.
        """
        by_question: dict[tuple[str, str], list[str]] = {}
        by_qid: dict[str, list[str]] = {}
        for s in samples:
            qid = s.metadata["question_id"]
            by_question.setdefault((qid, s.metadata["eval_question"]), []).append(s.id)
            by_qid.setdefault(qid, []).append(s.id)
        seen: Counter[tuple[str, str | None]] = Counter()
        out: dict[str, str] = {}
        for rec in records:
            qid = str(rec.get("question_id"))
            if qid not in by_qid:
                continue
            prompt = rec.get("prompt")
            if prompt is None:
                key: tuple[str, str | None] = (qid, None)
                candidates = by_qid[qid]
            else:
                try:
                    key = (qid, recover_question(str(prompt)))
                except ValueError as exc:
                    raise DataError(f"answer for question_id {qid}: {exc}") from exc
                candidates = by_question.get((qid, key[1]), [])  # type: ignore[arg-type]
            if not candidates:
                continue
            out[candidates[min(seen[key], len(candidates) - 1)]] = str(rec.get("text", ""))
            seen[key] += 1
        return out

    def build_request(self, sample: Sample, settings: Mapping[str, Any]) -> Request:
        if setting_choice(settings, "prompt", ("llava", "lmms-eval"), "llava") == "llava":
            text = sample.question
        else:
            ocr = ""
            if settings.get("ocr"):
                ocr = "\n" + OCR_MARKER + ", ".join(sample.metadata.get("ocr_tokens") or [])
            raw = str(sample.metadata["raw_question"])
            text = f"{settings.get('pre_prompt', '')}{raw.capitalize()}{ocr}{settings.get('post_prompt', LLAVA_SUFFIX)}"
        return make_request(self.name, sample, with_image(text), settings, 128)

    def score(
        self,
        samples: Sequence[Sample],
        responses: Mapping[str, Response],
        settings: Mapping[str, Any] | None = None,
        judge: Judge | None = None,
    ) -> TaskResult:
        scorer = str((settings or {}).get("scorer", "official"))
        if scorer not in ("official", "lmms-eval"):
            raise UsageError(f"protocol setting scorer={scorer!r} is not one of: official, lmms-eval")
        # Both are TextVQAAccuracyEvaluator's arithmetic (lmms-eval's extra strip is a no-op here).
        return score_textvqa(samples, responses, self.name, self.version, self.headline)

    def prepare(self, source: Path, root: Path) -> None:
        from tasks.textvqa.prepare import prepare_root

        prepare_root(source, root)

    def write_demo(self, root: Path, seed: int) -> None:
        from tasks.textvqa.demo import write_demo

        write_demo(root, seed)
