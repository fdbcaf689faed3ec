"""LLaVA-Bench-in-the-Wild (60 questions, 24 images), as LLaVA-1.5 / TinyLLaVA evaluate it: GPT-4 reviews.

Data files (under the data root, the layout of liuhaotian/llava-bench-in-the-wild):

- ``llava-bench-in-the-wild/questions.jsonl``: ``question_id``, ``image``, ``text``, ``category``
  (conv / detail / complex); samples keep the file's order, sample id = ``question_id``;
- ``llava-bench-in-the-wild/context.jsonl``: per image, the ``caption`` the judge sees;
- ``llava-bench-in-the-wild/answers_gpt4.jsonl``: the reference answers, paired with the questions by
  line position, as LLaVA's review script zips its files (a line whose ``question_id`` differs from its
  question's is still paired, and counted in a note);
- ``llava-bench-in-the-wild/rule.json``: LLaVA's ``llava/eval/table/rule.json`` (review prompts by
  category), read from the data root, never shipped here;
- ``llava-bench-in-the-wild/images/``: the images (needed to run a model only).

Protocols (the [tasks.llava_bench] tables of ``harness/protocols/*.toml``; ``scorer`` names the review):

- ``llava15``: ``<image>\\n`` + the raw question, greedy, 1024 new tokens; LLaVA's review
  (``tasks/llava_bench/scorer.py``: system message, temperature 0.2, max_tokens 1024, judge
  gpt-4-0314) run 3 times (``judge_runs``), the headline being the mean of the three "all" relative
  scores (LLaVA-1.5's reported number).
- ``lmms-eval``: the same prompt (empty pre/post prompts), stop at "ASSISTANT:", 4096 new tokens (its
  0.7.3 yaml); its review (no system message, temperature 0, its parser, judge gpt-4o-2024-11-20), one run.

Answers files: LLaVA's answers JSONL, paired by line position (the k-th line answers the k-th question).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from harness.data.readers import iter_jsonl, read_json, require_fields
from harness.errors import DataError
from harness.judging.contract import Judge
from harness.stats.bootstrap import Estimands
from harness.task import Settings
from harness.types import DataFile, ImageRef, Response, Sample, TaskResult
from tasks.common.base import LlavaTask
from tasks.common.files import QUESTION_FIELDS, image_folder, unique_question_lines
from tasks.llava_bench.scorer import CATEGORY_PREFIX, estimands, score_llava_bench

FOLDER = "llava-bench-in-the-wild"
QUESTIONS = f"{FOLDER}/questions.jsonl"
CONTEXT = f"{FOLDER}/context.jsonl"
REFERENCES = f"{FOLDER}/answers_gpt4.jsonl"
RULES = f"{FOLDER}/rule.json"
IMAGES_DIR = f"{FOLDER}/images"
HF_SOURCE = "https://huggingface.co/datasets/liuhaotian/llava-bench-in-the-wild"
RULE_SOURCE = "https://github.com/haotian-liu/LLaVA/blob/main/llava/eval/table/rule.json (save as rule.json)"


def read_rules(path: Path) -> dict[str, Any] | None:
    """LLaVA's rule file (None when absent); each rule needs ``role`` and ``prompt``."""
    if not path.is_file():
        return None
    rules = read_json(path)
    if not isinstance(rules, dict):
        raise DataError(f"{path}: expected a JSON object of rules by category")
    return rules


def rule_for(rules: Mapping[str, Any] | None, category: str, path: Path) -> dict[str, str] | None:
    """The rule of ``llava_bench_<category>`` (the review script's lookup); None without a rule file."""
    if rules is None:
        return None
    key = CATEGORY_PREFIX + category
    rule = rules.get(key)
    if not isinstance(rule, dict):
        raise DataError(f"{path}: no rule '{key}' (the review script stops on such a category)")
    require_fields(rule, ("role", "prompt"), f"{path}: {key}")
    return {"role": str(rule["role"]), "prompt": str(rule["prompt"])}


def read_captions(path: Path) -> dict[str, Any]:
    """Caption by image name (a later line for the same image wins, as the script's dict)."""
    captions: dict[str, Any] = {}
    for lineno, rec in iter_jsonl(path):
        require_fields(rec, ("image", "caption"), f"{path}:{lineno}")
        captions[str(rec["image"])] = rec["caption"]
    return captions


def read_references(path: Path) -> list[dict[str, Any]]:
    """The reference answers in line order."""
    out = []
    for lineno, rec in iter_jsonl(path):
        require_fields(rec, ("question_id", "text"), f"{path}:{lineno}")
        if not isinstance(rec["text"], str):  # the review prompt would show the judge "None" as the reference
            raise DataError(f"{path}:{lineno}: 'text' must be a string, got {type(rec['text']).__name__}")
        out.append(rec)
    return out


class LlavaBenchTask(LlavaTask):
    name = "llava_bench"
    description = "LLaVA-Bench-in-the-Wild: open answers reviewed against GPT-4 references by a GPT-4 judge."
    judged = True
    default_judge = "gpt-4-0314"
    headline = ("relative",)
    changelog: ClassVar[dict[str, str]] = {
        "1": "initial: raw question prompt + LLaVA review/summarizer; lmms-eval",
        "2": "a string caption reaches the judge as it is (LLaVA's fixed script, commit 237165b), not one"
        " character per line",
    }
    # The reviews of tasks/llava_bench/scorer.py: LLaVA's review script and lmms-eval's.
    scorers: ClassVar[dict[str, str]] = dict.fromkeys(("official", "lmms-eval"), "review")
    hf_dataset = "lmms-lab/llava-bench-in-the-wild"
    record_fields: ClassVar[dict[str, tuple[str, ...]]] = {"detail": ("tuples", "category", "image")}

    def __init__(self) -> None:
        # question_id of the answers line paired with each sample by the last match_answers call
        self._paired_ids: dict[str, str] = {}

    def data_files(self) -> list[DataFile]:
        return [
            DataFile(path=QUESTIONS, description="questions with category", source=HF_SOURCE),
            DataFile(path=CONTEXT, description="image captions shown to the judge", source=HF_SOURCE),
            DataFile(path=REFERENCES, description="GPT-4 reference answers", source=HF_SOURCE),
            DataFile(
                path=RULES, description="LLaVA's review rules (not in the Hugging Face copies)", source=RULE_SOURCE
            ),
            image_folder(IMAGES_DIR, "the 24 images", HF_SOURCE),
        ]

    def load(self, data_root: Path) -> list[Sample]:
        root = Path(data_root)
        captions = read_captions(root / CONTEXT)
        references = read_references(root / REFERENCES)
        rules = read_rules(root / RULES)
        samples: list[Sample] = []
        lines = unique_question_lines(root / QUESTIONS, (*QUESTION_FIELDS, "category"))
        for index, (where, rec) in enumerate(lines):
            qid, image, category = str(rec["question_id"]), str(rec["image"]), str(rec["category"])
            if image not in captions:
                raise DataError(f"{where}: image {image} has no caption in {root / CONTEXT}")
            reference = references[index] if index < len(references) else None
            samples.append(
                Sample(
                    id=qid,
                    question=str(rec["text"]),
                    images=(ImageRef(path=str(root / IMAGES_DIR / image), root=str(root)),),
                    target=None if reference is None else str(reference["text"]),
                    metadata={
                        "index": index,
                        "question_id": rec["question_id"],
                        "image": image,
                        "category": category,
                        "caption": captions[image],
                        "reference": None if reference is None else str(reference["text"]),
                        "reference_question_id": None if reference is None else reference["question_id"],
                        "reference_id": None if reference is None else reference.get("answer_id"),
                        "rule": rule_for(rules, category, root / RULES),
                        "rule_path": str(root / RULES),
                    },
                )
            )
        return samples

    def review(
        self, samples: Sequence[Sample], responses: Mapping[str, Response], settings: Settings, judge: Judge | None
    ) -> TaskResult:
        """Review with the judge ``judge_runs`` times (the review ``scorer`` names); no judge: not scored."""
        reviewed = {**settings, "reviewer": settings["scorer"]}
        result = score_llava_bench(samples, responses, self.header, reviewed, judge)
        result.notes.extend(pairing_notes(samples, responses, self._paired_ids))
        return result

    def statistics(self, records: Sequence[Mapping[str, Any]]) -> Estimands:
        return estimands(records)

    def subset_stratum(self, sample: Sample) -> str:
        """``--limit`` subsets keep the categories (conv, detail, complex) in proportion."""
        return str(sample.metadata.get("category") or "")

    def match_answers(self, samples: Sequence[Sample], records: Iterable[dict[str, Any]]) -> dict[str, str]:
        """The k-th answers line answers the k-th question, whatever its ``question_id`` (the review script
        zips the files); extra lines are ignored."""
        out: dict[str, str] = {}
        self._paired_ids = {}
        for sample, rec in zip(samples, records):
            out[sample.id] = str(rec.get("text", ""))
            self._paired_ids[sample.id] = str(rec.get("question_id"))
        return out


def pairing_notes(samples: Sequence[Sample], responses: Mapping[str, Response], paired: Mapping[str, str]) -> list[str]:
    """Counts of position-paired lines whose question_id differs from their question's."""
    notes = []
    answers = [sid for sid, qid in paired.items() if sid in responses and qid != sid]
    if answers:
        notes.append(
            f"{len(answers)} answer lines carry another question_id than the question on their line "
            f"(paired by position, as the review script does), e.g. question {answers[0]}"
        )
    refs = [
        s.id
        for s in samples
        if s.metadata.get("reference_question_id") is not None and str(s.metadata["reference_question_id"]) != s.id
    ]
    if refs:
        notes.append(
            f"{len(refs)} reference lines carry another question_id than the question on their line "
            f"(paired by position), e.g. question {refs[0]}"
        )
    return notes


__all__ = ["LlavaBenchTask"]
