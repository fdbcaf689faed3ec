"""GQA testdev-balanced, as LLaVA-1.5 / TinyLLaVA evaluate it (LLaVA question file + official eval).

Protocols (``default_settings``; a protocol file's [tasks.gqa] table overrides them):

- ``llava15``: the question file's text (question + "\\nAnswer the question using a single word or
  phrase."), ``max_new_tokens`` 128, the official scorer (``tasks/gqa/scorer.py``).
- ``lmms-eval`` (v0.7, ``tasks/gqa/gqa.yaml``): ``pre_prompt`` + the official question + ``post_prompt``
  (the same suffix, so the same prompt), ``max_new_tokens`` 16, exact match after strip, lower-case
  and deletion of ASCII punctuation; accuracy only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from harness.data.readers import iter_jsonl, read_json, require_fields
from harness.errors import DataError
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
from tasks.common.requests import (
    LLAVA_EVAL_ZIP,
    LLAVA_SUFFIX,
    image_question_request,
    make_request,
    setting_choice,
    with_image,
)
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



class GQATask(Task):
    name = "gqa"
    version = "1"
    description = "GQA testdev-balanced: compositional VQA on real images, exact-match accuracy."
    judged = False
    headline = ("accuracy",)
    changelog: ClassVar[dict[str, str]] = {
        "1": "initial: LLaVA conversion + official testdev-balanced eval; lmms-eval protocol (prompt, exact_match)"
    }
    default_settings: ClassVar[dict[str, dict[str, Any]]] = {
        "llava15": {"max_new_tokens": 128, "prompt": "llava", "scorer": "official"},
        "lmms-eval": {
            "max_new_tokens": 16,
            "prompt": "lmms-eval",
            "pre_prompt": "",
            "post_prompt": LLAVA_SUFFIX,
            "scorer": "lmms-eval",
        },
    }
    hf_dataset = "lmms-lab/GQA"
    record_fields: ClassVar[dict[str, tuple[str, ...]]] = {"metadata": ("imageId", "structural")}

    def data_files(self) -> list[DataFile]:
        return [
            DataFile(
                path=LLAVA_QUESTIONS,
                description="LLaVA's question file (question_id, image, text with the short-answer suffix)",
                source=LLAVA_EVAL_ZIP,
            ),
            DataFile(
                path=OFFICIAL_QUESTIONS,
                description="official GQA testdev-balanced questions with answers and types",
                source=f"GQA questions1.2.zip from {_GQA_SITE}",
            ),
            DataFile(
                path=IMAGES_DIR,
                kind="dir",
                needed_for="run",
                description="GQA images (<imageId>.jpg)",
                source=f"GQA images.zip from {_GQA_SITE}",
            ),
        ]

    def load(self, data_root: Path) -> list[Sample]:
        root = Path(data_root)
        jsonl_path = root / LLAVA_QUESTIONS
        questions_path = root / OFFICIAL_QUESTIONS
        questions = read_json(questions_path)
        if not isinstance(questions, dict):
            raise DataError(f"{questions_path}: expected a JSON object keyed by question id")
        index = {qid: i for i, qid in enumerate(questions)}
        samples: list[Sample] = []
        seen: set[str] = set()
        for lineno, rec in iter_jsonl(jsonl_path):
            where = f"{jsonl_path}:{lineno}"
            require_fields(rec, ("question_id", "image", "text"), where)
            qid = str(rec["question_id"])
            if qid in seen:
                raise DataError(f"{where}: duplicate question_id {qid}")
            seen.add(qid)
            question = questions.get(qid)
            if question is None:
                raise DataError(f"{where}: question_id {qid} is not in {questions_path}")
            metadata = _official_metadata(question, f"{questions_path}: question {qid}", index[qid])
            samples.append(
                Sample(
                    id=qid,
                    question=str(rec["text"]),
                    images=(ImageRef(path=str(root / IMAGES_DIR / str(rec["image"]))),),
                    target=question["answer"],
                    metadata=metadata,
                )
            )
        return samples

    def build_request(self, sample: Sample, settings: Mapping[str, Any]) -> Request:
        if setting_choice(settings, "prompt", ("llava", "lmms-eval"), "llava") == "llava":
            return image_question_request(self.name, sample, settings)
        pre, post = settings.get("pre_prompt", ""), settings.get("post_prompt", LLAVA_SUFFIX)
        text = f"{pre}{sample.metadata['raw_question']}{post}"
        return make_request(self.name, sample, with_image(text), settings, 16)

    def score(
        self,
        samples: Sequence[Sample],
        responses: Mapping[str, Response],
        settings: Mapping[str, Any] | None = None,
        judge: Judge | None = None,
    ) -> TaskResult:
        if setting_choice(settings or {}, "scorer", ("official", "lmms-eval"), "official") == "lmms-eval":
            return score_gqa_lmms_eval(samples, responses, self.name, self.version, self.headline)
        return score_gqa(samples, responses, self.name, self.version, self.headline)

    def statistics(self, records: Sequence[Mapping[str, Any]]) -> Estimands:
        return estimands(records)

    def subset_stratum(self, sample: Sample) -> str:
        """``--limit`` subsets keep the structural types (verify, query, choose, logical, compare) in proportion."""
        return str(sample.metadata.get("structural", ""))

    def prepare(self, source: Path, root: Path) -> None:
        from tasks.gqa.prepare import prepare_root

        prepare_root(source, root)

    def write_demo(self, root: Path, seed: int) -> None:
        from tasks.gqa.demo import write_demo

        write_demo(root, seed)
