"""MM-Vet (218 questions), as LLaVA-1.5 / TinyLLaVA evaluate it: raw questions, GPT-4 graded by the official evaluator.

Data files (under the data root, LLaVA's ``playground/data/eval`` layout):

- ``mm-vet/mm-vet.json``: the official questions, ``v1_<n>`` -> {imagename, question, answer (with
  ``<AND>`` / ``<OR>``), capability (list of rec, ocr, know, gen, spat, math), imagesource}; samples
  keep the file's order, sample id = the key;
- ``mm-vet/mmvet_judge_prompt.txt``: the grader's few-shot instruction (the ``prompt`` string of the
  official ``mm-vet_evaluator.py``), read as it is (its final newline matters), never shipped here;
- ``mm-vet/images/``: the images (needed to run a model only).

Protocols (the [tasks.mmvet] tables of ``harness/protocols/*.toml``; ``scorer`` names the grader):

- ``llava15``: ``<image>\\n`` + the raw question (LLaVA's ``llava-mm-vet.jsonl``), greedy, 1024 new
  tokens; the official grader (``tasks/mmvet/scorer.py``), max_tokens 3, ``judge_runs`` 1 (the
  evaluator's default; the MM-Vet paper used 5, LLaVA's published grade file 3); judge gpt-4-0613.
- ``lmms-eval``: lmms-eval's ``pre_prompt`` ("First please perform reasoning, ...") + question, its
  generation temperature 0.2 (its llava models then sample), 1024 new tokens; lmms-eval's grader
  (instruction variant, " |" row end, max_tokens 128, its retry rules), one run; judge
  gpt-4o-2024-11-20. lmms-eval reports the overall score only; the capability scores are given too.

Answers files: LLaVA's answers JSONL (``question_id`` n, or "v1_n", joins sample "v1_n"; a later line
wins), or MM-Vet's results file ``{"v1_0": "answer", ...}`` (``score_path``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from harness.data.readers import read_json, require_fields
from harness.errors import DataError, UsageError
from harness.judging.contract import Judge
from harness.stats.bootstrap import Estimands
from harness.task import Settings
from harness.types import DataFile, ImageRef, Response, Sample, TaskResult
from tasks.common.base import LlavaTask
from tasks.common.files import image_folder
from tasks.mmvet.scorer import PROMPT_SOURCE, cap_set_name, estimands, score_mmvet

QUESTIONS = "mm-vet/mm-vet.json"
JUDGE_PROMPT = "mm-vet/mmvet_judge_prompt.txt"
IMAGES_DIR = "mm-vet/images"
MMVET_ZIP = "mm-vet.zip from https://github.com/yuweihao/MM-Vet (release v1)"
_FIELDS = ("imagename", "question", "answer", "capability")


def question_id_of(value: Any) -> str | None:
    """The sample id an answers line names: ``n`` or "n" -> "v1_n", "v1_n" as is; None otherwise."""
    text = str(value).strip()
    if text.isdigit():
        return f"v1_{int(text)}"
    return text if text.startswith("v1_") else None


def read_instruction(path: Path) -> str | None:
    """The judge instruction exactly as stored (None when the file is absent)."""
    if not path.is_file():
        return None
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text") from exc


def _sample(qid: str, item: Any, root: Path, instruction: str | None, index: int) -> Sample:
    where = f"{root / QUESTIONS}: {qid}"
    if not isinstance(item, dict):
        raise DataError(f"{where}: expected a JSON object")
    require_fields(item, _FIELDS, where)
    caps = item["capability"]
    if not isinstance(caps, list) or not caps or not all(isinstance(c, str) for c in caps):
        raise DataError(f"{where}: 'capability' must be a non-empty list of names")
    if not isinstance(item["answer"], str):  # the evaluator splits it on <AND>/<OR>: it stops on anything else
        raise DataError(f"{where}: 'answer' must be a string, got {type(item['answer']).__name__}")
    return Sample(
        id=qid,
        question=str(item["question"]),
        images=(ImageRef(path=str(root / IMAGES_DIR / str(item["imagename"])), root=str(root)),),
        target=str(item["answer"]),
        metadata={
            "index": index,
            "capability": list(caps),
            "imagename": item["imagename"],
            "imagesource": item.get("imagesource"),
            "judge_instruction": instruction,
            "judge_prompt_path": str(root / JUDGE_PROMPT),
        },
    )


class MMVetTask(LlavaTask):
    name = "mmvet"
    description = "MM-Vet: open-ended questions on integrated capabilities, graded 0-1 by a GPT-4 judge."
    judged = True
    default_judge = "gpt-4-0613"
    headline = ("total",)
    changelog: ClassVar[dict[str, str]] = {"1": "initial: raw question prompt + official MM-Vet evaluator; lmms-eval"}
    # The graders of tasks/mmvet/scorer.py: the official evaluator's and lmms-eval's.
    scorers: ClassVar[dict[str, str]] = dict.fromkeys(("official", "lmms-eval"), "grade")
    hf_dataset = "lmms-lab/MMVet"
    record_fields: ClassVar[dict[str, tuple[str, ...]]] = {
        "detail": ("scores", "capability"),
        "metadata": ("imagename",),
    }

    def data_files(self) -> list[DataFile]:
        return [
            DataFile(path=QUESTIONS, description="MM-Vet questions, answers and capabilities", source=MMVET_ZIP),
            DataFile(
                path=JUDGE_PROMPT,
                description="the official grader's few-shot instruction (not in the Hugging Face copy)",
                source=PROMPT_SOURCE,
            ),
            image_folder(IMAGES_DIR, "MM-Vet images", MMVET_ZIP),
        ]

    def load(self, data_root: Path) -> list[Sample]:
        root = Path(data_root)
        data = read_json(root / QUESTIONS)
        if not isinstance(data, dict):
            raise DataError(f"{root / QUESTIONS}: expected a JSON object keyed by question id (v1_0, ...)")
        instruction = read_instruction(root / JUDGE_PROMPT)
        return [_sample(str(qid), item, root, instruction, i) for i, (qid, item) in enumerate(data.items())]

    def grade(
        self, samples: Sequence[Sample], responses: Mapping[str, Response], settings: Settings, judge: Judge | None
    ) -> TaskResult:
        """Grade with the judge ``judge_runs`` times (the grader ``scorer`` names); no judge: not scored."""
        return score_mmvet(samples, responses, self.header, {**settings, "grader": settings["scorer"]}, judge)

    def statistics(self, records: Sequence[Mapping[str, Any]]) -> Estimands:
        return estimands(records)

    def subset_stratum(self, sample: Sample) -> str:
        """``--limit`` subsets keep the capability sets in proportion."""
        return cap_set_name(sample.metadata["capability"])

    def answer_id(self, question_id: Any) -> str | None:
        """LLaVA answers: ``question_id`` n (or "v1_n") answers sample "v1_n"."""
        return question_id_of(question_id)

    def score_path(
        self, path: Path, data_root: Path | None, settings: Settings | None = None, judge: Judge | None = None
    ) -> TaskResult | None:
        """MM-Vet's results file (one JSON object ``{"v1_0": "answer", ...}``); None for any other file.

        Grading needs the judge: this takes ``settings`` and ``judge`` beyond the base signature, and
        refuses such a file when no judge is given.
        """
        answers = read_results_file(Path(path))
        if answers is None:
            return None
        if data_root is None:
            raise DataError("scoring an MM-Vet results file needs the data root (mm-vet/mm-vet.json)")
        if judge is None:
            raise UsageError(
                f"{path}: an MM-Vet results file is graded by a judge, and none reached Task.score_path; "
                'score an answers JSONL instead (one {"question_id": n, "text": answer} line per v1_n)'
            )
        samples = self.load(data_root)
        known = {s.id for s in samples}
        responses = {sid: Response(text=text) for sid, text in answers.items() if sid in known}
        result = self.score(samples, responses, settings, judge)
        unknown = len(answers) - len(responses)
        if unknown:
            result.notes.append(f"{Path(path).name}: {unknown} answers name no MM-Vet question; ignored")
        return result


def read_results_file(path: Path) -> dict[str, str] | None:
    """The answers of an MM-Vet results file, or None when ``path`` is not one (a JSONL, a folder...)."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    if not isinstance(data, dict) or not data or not all(str(k).startswith("v1_") for k in data):
        return None
    if not all(isinstance(v, str) for v in data.values()):
        raise DataError(f"{path}: an MM-Vet results file maps each question id to the answer text")
    return {str(k): v for k, v in data.items()}


__all__ = ["MMVetTask"]
