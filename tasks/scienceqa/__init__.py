"""ScienceQA-IMG (test split), as LLaVA-1.5 / TinyLLaVA evaluate it: LLaVA's question file + eval_science_qa.py.

Data (under the data root, LLaVA's ``playground/data/eval`` layout):

- ``scienceqa/llava_test_CQM-A.json``: LLaVA's question file (eval.zip): a list of
  ``{id, image?, conversations}``; the first human turn is ``[<image>\\n][Context: hint\\n]question``
  followed by one ``\\nA. option`` line per choice. Samples follow its order; problems without an
  image have no ``image`` key and no ``<image>`` token. Only a run needs it (for the prompts).
- ``scienceqa/problems.json`` and ``scienceqa/pid_splits.json``: the official ScienceQA files
  (answers, choices; the ``test`` split list the scorer walks). They are all ``harness score`` needs:
  without the question file the samples are the test split's problems, in its order
  (``load_for_scoring``), with the ids, answers and image flags ``load`` gives.
- ``scienceqa/images/test/<id>/image.png``: the test images (only to run a model).

Protocols (the [tasks.scienceqa] tables of ``harness/protocols/*.toml``): ``llava15`` is
``model_vqa_science.py --single-pred-prompt`` (image token moved to the front, the single-letter
instruction appended, 1024 new tokens) scored by ``eval_science_qa.py``; ``lmms-eval`` is lmms-eval's
``scienceqa_img`` prompt (built from problems.json) and scorer, 16 new tokens, image problems only
(text-only problems are still answered, since a task cannot drop samples per protocol, but they are
not scored).

Answers files (``harness score``) are read as eval_science_qa.py reads them: ``question_id`` to
``text``, a later line for the same id replacing an earlier one; ids that are no test problem are
ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from harness.data.readers import read_json
from harness.errors import DataError
from harness.stats.bootstrap import Estimands
from harness.task import Settings
from harness.types import IMAGE_PLACEHOLDER, DataFile, ImageRef, Sample
from tasks.common.base import LlavaTask, header_scorer
from tasks.common.files import image_folder, llava_file
from tasks.common.requests import with_image
from tasks.scienceqa import scorer
from tasks.scienceqa.scorer import OPTIONS, estimands

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


def image_first(sample: Sample, text: str) -> str:
    """The image token before the text for an image problem; text-only problems have none."""
    return with_image(text) if sample.images else text


def read_official(root: Path) -> tuple[dict[str, Any], list[str]]:
    """problems.json (by problem id) and the ``test`` ids of pid_splits.json (each once, in order)."""
    problems_path, splits_path = root / PROBLEMS, root / PID_SPLITS
    problems = read_json(problems_path)
    if not isinstance(problems, dict):
        raise DataError(f"{problems_path}: expected a JSON object keyed by problem id")
    splits = read_json(splits_path)
    if not isinstance(splits, dict) or not isinstance(splits.get("test"), list):
        raise DataError(f"{splits_path}: expected a JSON object with a 'test' list of problem ids")
    return problems, list(dict.fromkeys(str(pid) for pid in splits["test"]))


def _sample(root: Path, pid: str, question: str, image: str | None, problem: Any, in_test: bool) -> Sample:
    """The sample of problem ``pid`` (``image``: its file under the test image folder, None for text-only)."""
    answer, choices = _problem_fields(problem, pid, str(root / PROBLEMS))
    return Sample(
        id=pid,
        question=question,
        images=(ImageRef(path=str(root / IMAGES_DIR / image), root=str(root)),) if image is not None else (),
        target=answer,
        metadata={
            "n_choices": len(choices),
            "answer_letter": OPTIONS[answer],
            "in_test_split": in_test,
            "image": image,
            "choices": choices,
            "hint": str(problem.get("hint") or ""),
            "problem_question": str(problem.get("question", "")),
            "subject": problem.get("subject"),
            "grade": problem.get("grade"),
        },
    )


class ScienceQATask(LlavaTask):
    name = "scienceqa"
    description = "ScienceQA-IMG test: science multiple choice; accuracy on image problems (eval_science_qa.py)."
    headline = ("img_accuracy",)
    changelog: ClassVar[dict[str, str]] = {"1": "initial: LLaVA single-prediction prompt + eval_science_qa.py"}
    scorers: ClassVar[dict[str, str]] = {"llava": "score_llava", "lmms-eval": "score_lmms_eval"}
    hf_dataset = "lmms-lab/ScienceQA"
    record_fields: ClassVar[dict[str, tuple[str, ...]]] = {"detail": ("is_multimodal",)}

    def data_files(self) -> list[DataFile]:
        images = f"test.zip of the ScienceQA images, {_SQA_REPO}"
        return [
            # eval_science_qa.py reads problems.json and pid_splits.json; the question file only makes prompts
            llava_file(LLAVA_QUESTIONS, "LLaVA's ScienceQA test question file (id, image, conversations)", "run"),
            DataFile(path=PROBLEMS, description="official ScienceQA problems (answers, choices)", source=_SQA_REPO),
            DataFile(path=PID_SPLITS, description="official ScienceQA split lists (the 'test' ids)", source=_SQA_REPO),
            image_folder(IMAGES_DIR, "ScienceQA test images (<id>/image.png)", images),
        ]

    def load(self, data_root: Path) -> list[Sample]:
        root = Path(data_root)
        questions_path, problems_path, splits_path = root / LLAVA_QUESTIONS, root / PROBLEMS, root / PID_SPLITS
        questions = read_json(questions_path)
        if not isinstance(questions, list):
            raise DataError(f"{questions_path}: expected a JSON list of questions")
        problems, test_ids = read_official(root)
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
            image = entry.get("image")
            if image is not None and not isinstance(image, str):
                raise DataError(f"{where}: 'image' is not a file name")
            question = value.replace(IMAGE_PLACEHOLDER, "").strip()
            samples.append(_sample(root, pid, question, image, problems[pid], pid in in_test))
        absent = [pid for pid in test_ids if pid not in seen]
        if absent:
            raise DataError(
                f"{questions_path}: {len(absent)} test problems of {splits_path} are not in the question file "
                f"(first: {absent[0]}); eval_science_qa.py would score them FAILED"
            )
        return samples

    def load_for_scoring(self, data_root: Path) -> list[Sample]:
        """The test problems from problems.json and pid_splits.json alone (what eval_science_qa.py reads), in
        the split's order: id = problem id (the answers' question_id), an image where problems.json names one.
        The question is the problem's own text, not LLaVA's CQM-A prompt: these samples score answers only."""
        root = Path(data_root)
        problems, test_ids = read_official(root)
        samples: list[Sample] = []
        for pid in test_ids:
            if pid not in problems:
                raise DataError(f"{root / PID_SPLITS}: test problem {pid} is not in {root / PROBLEMS}")
            problem = problems[pid]
            _problem_fields(problem, pid, str(root / PROBLEMS))  # a malformed problem is named before it is read
            image = problem.get("image")
            if image is not None and not isinstance(image, str):
                raise DataError(f"{root / PROBLEMS}: problem {pid}: 'image' is not a file name")
            question = str(problem.get("question", ""))
            samples.append(_sample(root, pid, question, f"{pid}/{image}" if image else None, problem, True))
        return samples

    def llava_prompt(self, sample: Sample, settings: Settings) -> str:
        """model_vqa_science.py --single-pred-prompt: ``<image>\\n`` (image problems) + text + the instruction."""
        return image_first(sample, f"{sample.question}\n{SUFFIX}")

    def lmms_eval_prompt(self, sample: Sample, settings: Settings) -> str:
        """lmms-eval's sqa_doc_to_text (default format), image token in front for image problems."""
        meta = sample.metadata
        context = f"Context: {meta['hint']}\n" if meta["hint"] else ""
        choices = "\n".join(f"{OPTIONS[i]}. {c}" for i, c in enumerate(meta["choices"]))
        return image_first(sample, f"{context}{meta['problem_question']}\n{choices}\n{SUFFIX}")

    score_llava = header_scorer(scorer.score_official)  # eval_science_qa.py
    score_lmms_eval = header_scorer(scorer.score_lmms_eval)  # lmms-eval's letter matcher, image problems only

    def statistics(self, records: Sequence[Mapping[str, Any]]) -> Estimands:
        return estimands(records)

    def subset_stratum(self, sample: Sample) -> str:
        """``--limit`` subsets keep the subjects (natural, social, language science) in proportion."""
        return str(sample.metadata.get("subject") or "")
