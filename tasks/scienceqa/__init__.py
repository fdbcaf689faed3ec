"""ScienceQA-IMG (test split), as LLaVA-1.5 / TinyLLaVA evaluate it: LLaVA's question file + eval_science_qa.py.

Data (under the data root, LLaVA's ``playground/data/eval`` layout):

- ``scienceqa/llava_test_CQM-A.json``: LLaVA's question file (eval.zip): a list of
  ``{id, image?, conversations}``; the first human turn is ``[<image>\\n][Context: hint\\n]question``
  followed by one ``\\nA. option`` line per choice. Samples follow its order; problems without an
  image have no ``image`` key and no ``<image>`` token.
- ``scienceqa/problems.json`` and ``scienceqa/pid_splits.json``: the official ScienceQA files
  (answers, choices; the ``test`` split list the scorer walks).
- ``scienceqa/images/test/<id>/image.png``: the test images (only to run a model).

Protocols: ``llava15`` is ``model_vqa_science.py --single-pred-prompt`` (image token moved to the
front, the single-letter instruction appended, 1024 new tokens) scored by ``eval_science_qa.py``;
``lmms-eval`` is lmms-eval's ``scienceqa_img`` prompt (built from problems.json) and scorer, 16 new
tokens, image problems only (text-only problems are still answered, since a task cannot drop
samples per protocol, but they are not scored).

Answers files (``harness score``) are read as eval_science_qa.py reads them: ``question_id`` to
``text``, a later line for the same id replacing an earlier one; ids that are no test problem are
ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from harness.data.readers import read_json
from harness.errors import DataError, HarnessError
from harness.judging.contract import Judge
from harness.stats.bootstrap import Estimands
from harness.task import Task
from harness.types import (
    IMAGE_PLACEHOLDER,
    DataFile,
    ImageRef,
    Request,
    Response,
    Sample,
    TaskResult,
)
from tasks.common.requests import LLAVA_EVAL_ZIP, make_request, setting_choice
from tasks.scienceqa.scorer import OPTIONS, estimands, score_lmms_eval, score_official

LLAVA_QUESTIONS = "scienceqa/llava_test_CQM-A.json"
PROBLEMS = "scienceqa/problems.json"
PID_SPLITS = "scienceqa/pid_splits.json"
IMAGES_DIR = "scienceqa/images/test"
SUFFIX = "Answer with the option's letter from the given choices directly."
_SQA_REPO = "https://github.com/lupantech/ScienceQA (data/scienceqa)"


def _problem_fields(problem: Any, pid: str, where: str) -> tuple[int, list[str]]:
    """The answer index and the choices of one problems.json entry; DataError naming the problem."""
    if not isinstance(problem, Mapping):
        raise DataError(f"{where}: problem {pid} is not a JSON object")
    for field in ("answer", "choices"):
        if field not in problem:
            raise DataError(f"{where}: problem {pid}: missing field '{field}'")
    choices, answer = problem["choices"], problem["answer"]
    if not isinstance(choices, list) or not choices:
        raise DataError(f"{where}: problem {pid}: 'choices' is not a non-empty list")
    if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < len(OPTIONS):
        raise DataError(f"{where}: problem {pid}: 'answer' {answer!r} is not an option index 0-4")
    return answer, [str(c) for c in choices]


def _human_turn(entry: Any, where: str) -> str:
    if not isinstance(entry, Mapping) or "id" not in entry or "conversations" not in entry:
        raise DataError(f"{where}: expected an object with 'id' and 'conversations'")
    turns = entry["conversations"]
    if not isinstance(turns, list) or not turns or not isinstance(turns[0], Mapping) or "value" not in turns[0]:
        raise DataError(f"{where}: 'conversations' has no first turn with a 'value'")
    return str(turns[0]["value"])


def llava_prompt(sample: Sample) -> str:
    """model_vqa_science.py --single-pred-prompt: ``<image>\\n`` (image problems) + text + the instruction."""
    text = sample.question
    if sample.images:
        text = f"{IMAGE_PLACEHOLDER}\n{text}"
    return f"{text}\n{SUFFIX}"


def lmms_eval_prompt(sample: Sample) -> str:
    """lmms-eval's sqa_doc_to_text (default format), image token in front for image problems."""
    meta = sample.metadata
    context = f"Context: {meta['hint']}\n" if meta["hint"] else ""
    choices = "\n".join(f"{OPTIONS[i]}. {c}" for i, c in enumerate(meta["choices"]))
    text = f"{context}{meta['problem_question']}\n{choices}\n{SUFFIX}"
    return f"{IMAGE_PLACEHOLDER}\n{text}" if sample.images else text


PROMPTS = {"llava": llava_prompt, "lmms-eval": lmms_eval_prompt}


class ScienceQATask(Task):
    name = "scienceqa"
    version = "1"
    description = "ScienceQA-IMG test: science multiple choice; accuracy on image problems (eval_science_qa.py)."
    judged = False
    headline = ("img_accuracy",)
    changelog: ClassVar[dict[str, str]] = {"1": "initial: LLaVA single-prediction prompt + eval_science_qa.py"}
    default_settings: ClassVar[dict[str, dict[str, Any]]] = {
        "llava15": {"prompt": "llava", "scorer": "llava", "max_new_tokens": 1024},
        "lmms-eval": {"prompt": "lmms-eval", "scorer": "lmms-eval", "max_new_tokens": 16},
    }
    hf_dataset = "lmms-lab/ScienceQA"
    record_fields: ClassVar[dict[str, tuple[str, ...]]] = {"detail": ("is_multimodal",)}

    def data_files(self) -> list[DataFile]:
        return [
            DataFile(
                path=LLAVA_QUESTIONS,
                description="LLaVA's ScienceQA test question file (id, image, conversations)",
                source=LLAVA_EVAL_ZIP,
            ),
            DataFile(path=PROBLEMS, description="official ScienceQA problems (answers, choices)", source=_SQA_REPO),
            DataFile(path=PID_SPLITS, description="official ScienceQA split lists (the 'test' ids)", source=_SQA_REPO),
            DataFile(
                path=IMAGES_DIR,
                kind="dir",
                needed_for="run",
                description="ScienceQA test images (<id>/image.png)",
                source=f"test.zip of the ScienceQA images, {_SQA_REPO}",
            ),
        ]

    def load(self, data_root: Path) -> list[Sample]:
        root = Path(data_root)
        questions_path, problems_path, splits_path = root / LLAVA_QUESTIONS, root / PROBLEMS, root / PID_SPLITS
        questions = read_json(questions_path)
        if not isinstance(questions, list):
            raise DataError(f"{questions_path}: expected a JSON list of questions")
        problems = read_json(problems_path)
        if not isinstance(problems, dict):
            raise DataError(f"{problems_path}: expected a JSON object keyed by problem id")
        splits = read_json(splits_path)
        if not isinstance(splits, dict) or not isinstance(splits.get("test"), list):
            raise DataError(f"{splits_path}: expected a JSON object with a 'test' list of problem ids")
        test_ids = [str(pid) for pid in splits["test"]]
        in_test = set(test_ids)
        samples: list[Sample] = []
        seen: set[str] = set()
        for number, entry in enumerate(questions):
            where = f"{questions_path}: entry {number}"
            value = _human_turn(entry, where)
            pid = str(entry["id"])
            if pid in seen:
                raise DataError(f"{where}: duplicate id {pid}")
            seen.add(pid)
            if pid not in problems:
                raise DataError(f"{where}: problem {pid} is not in {problems_path}")
            problem = problems[pid]
            answer, choices = _problem_fields(problem, pid, str(problems_path))
            image = entry.get("image")
            if image is not None and not isinstance(image, str):
                raise DataError(f"{where}: 'image' is not a file name")
            samples.append(
                Sample(
                    id=pid,
                    question=value.replace(IMAGE_PLACEHOLDER, "").strip(),
                    images=(ImageRef(path=str(root / IMAGES_DIR / image)),) if image is not None else (),
                    target=answer,
                    metadata={
                        "n_choices": len(choices),
                        "answer_letter": OPTIONS[answer],
                        "in_test_split": pid in in_test,
                        "image": image,
                        "choices": choices,
                        "hint": str(problem.get("hint") or ""),
                        "problem_question": str(problem.get("question", "")),
                        "subject": problem.get("subject"),
                        "grade": problem.get("grade"),
                    },
                )
            )
        absent = [pid for pid in test_ids if pid not in seen]
        if absent:
            raise DataError(
                f"{questions_path}: {len(absent)} test problems of {splits_path} are not in the question file "
                f"(first: {absent[0]}); eval_science_qa.py would score them FAILED"
            )
        return samples

    def build_request(self, sample: Sample, settings: Mapping[str, Any]) -> Request:
        style = setting_choice(settings, "prompt", tuple(PROMPTS), "llava")
        return make_request(self.name, sample, PROMPTS[style](sample), settings, 1024)

    def score(
        self,
        samples: Sequence[Sample],
        responses: Mapping[str, Response],
        settings: Mapping[str, Any] | None = None,
        judge: Judge | None = None,
    ) -> TaskResult:
        scorer = str((settings or {}).get("scorer", "llava"))
        header = (self.name, self.version, self.headline)
        if scorer == "llava":
            return score_official(samples, responses, header)
        if scorer == "lmms-eval":
            return score_lmms_eval(samples, responses, header)
        raise HarnessError(f"scienceqa: unknown scorer {scorer!r}; expected 'llava' or 'lmms-eval'")

    def statistics(self, records: Sequence[Mapping[str, Any]]) -> Estimands:
        return estimands(records)

    def subset_stratum(self, sample: Sample) -> str:
        """``--limit`` subsets keep the subjects (natural, social, language science) in proportion."""
        return str(sample.metadata.get("subject") or "")

    def match_answers(self, samples: Sequence[Sample], records: Iterable[dict[str, Any]]) -> dict[str, str]:
        """eval_science_qa.py's reading: ``{question_id: line}``, a later line replacing an earlier one.

        Ids are compared as strings; lines for ids that are not samples are ignored.
        """
        ids = {s.id for s in samples}
        out: dict[str, str] = {}
        for rec in records:
            qid = str(rec.get("question_id"))
            if qid in ids:
                out[qid] = str(rec.get("text", ""))
        return out

    def prepare(self, source: Path, root: Path) -> None:
        from tasks.scienceqa.prepare import prepare_root

        prepare_root(source, root)

    def write_demo(self, root: Path, seed: int) -> None:
        from tasks.scienceqa.demo import write_demo

        write_demo(root, seed)
