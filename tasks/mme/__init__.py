"""MME (perception + cognition yes/no), as LLaVA-1.5 / TinyLLaVA evaluate it with the official eval tool.

Protocols (the [tasks.mme] tables of ``harness/protocols/*.toml``):

- ``llava15``: LLaVA's question file (" Please answer yes or no." replaced by the short-answer suffix),
  ``max_new_tokens`` 128, LLaVA's converter + the eval tool's calculation.py.
- ``lmms-eval`` (v0.7, ``tasks/mme/mme.yaml``): the ground-truth question, stripped, with
  " Please answer yes or no." replaced the same way (``pre_prompt`` / ``post_prompt``; a two-space
  variant keeps one space before the suffix, unlike LLaVA's file), ``max_new_tokens`` 16, lmms-eval's
  parser and aggregation (``tasks/mme/scorer.py``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from harness.data.readers import read_tsv
from harness.errors import DataError, UsageError
from harness.judging.contract import Judge
from harness.stats.bootstrap import Estimands
from harness.task import Settings
from harness.types import DataFile, ImageRef, Sample, TaskResult
from tasks.common.base import LlavaTask, header_scorer
from tasks.common.files import image_folder, llava_file, question_lines
from tasks.common.matching import match_in_order
from tasks.common.requests import with_image
from tasks.mme.scorer import ALL_SUBTASKS, estimands, score_directory, score_samples, score_samples_lmms_eval

LLAVA_QUESTIONS = "MME/llava_mme.jsonl"
GT_DIR = "MME/eval_tool/Your_Results"
IMAGES_DIR = "MME/MME_Benchmark_release_version"
_MME_PAGE = "https://github.com/BradyFU/Awesome-Multimodal-Large-Language-Models/tree/Evaluation"
SHORT_SUFFIX = "Answer the question using a single word or phrase."
YES_NO_SUFFIX = "Please answer yes or no."
LMMS_EVAL_REPLACED = " Please answer yes or no."

GroundTruth = dict[tuple[str, str], str]  # (image stem, question) -> Yes/No


def read_ground_truth(path: Path) -> GroundTruth:
    """One eval-tool template file (image, question, Yes/No per line), keyed as the converter looks it up."""
    gt: GroundTruth = {}
    for lineno, fields in read_tsv(path):
        if len(fields) < 3:
            raise DataError(f"{path}:{lineno}: expected image, question and answer separated by tabs")
        answer = fields[2].strip()
        if answer.lower() not in ("yes", "no"):
            raise DataError(f"{path}:{lineno}: answer {answer!r} is not Yes or No")
        gt[(fields[0].split(".")[0], fields[1])] = answer
    return gt


def converter_question(text: str, stem: str, gt: GroundTruth) -> str:
    """The ground-truth question LLaVA's converter derives from a prompt (suffix swap, two-space fallback)."""
    question = text
    if SHORT_SUFFIX in question:
        question = question.replace(SHORT_SUFFIX, "").strip()
    if YES_NO_SUFFIX not in question:
        question = f"{question} {YES_NO_SUFFIX}"
        if (stem, question) not in gt:
            question = question.replace(f" {YES_NO_SUFFIX}", f"  {YES_NO_SUFFIX}")
    return question


def image_stem(question_id: str) -> str:
    """The converter's file stem: last path part up to its first dot."""
    return question_id.split("/")[-1].split(".")[0]


def lmms_eval_prompt(question: str, pre_prompt: str, post_prompt: str) -> str:
    """lmms-eval's ``mme_doc_to_text``: strip, then for a non-empty pre/post prompt drop " Please answer yes or no."."""
    text = question.strip()
    if pre_prompt:
        text = pre_prompt + text.replace(LMMS_EVAL_REPLACED, "")
    if post_prompt:
        text = text.replace(LMMS_EVAL_REPLACED, "") + post_prompt
    return text


class MMETask(LlavaTask):
    name = "mme"
    description = "MME: 14 yes/no subtasks; perception and cognition scores (sum of 100*(acc+acc+))."
    headline = ("perception", "cognition")
    changelog: ClassVar[dict[str, str]] = {
        "1": "initial: LLaVA conversion + official eval_tool calculation; lmms-eval protocol (prompt, parser)"
    }
    scorers: ClassVar[dict[str, str]] = {"official": "score_official", "lmms-eval": "score_lmms_eval"}
    hf_dataset = "lmms-lab/MME"
    record_fields: ClassVar[dict[str, tuple[str, ...]]] = {
        "detail": ("subtask", "pair"),
        "metadata": ("category", "question_id"),
    }

    def data_files(self) -> list[DataFile]:
        templates = "official eval tool templates with the ground truth (<subtask>.txt)"
        images = "MME benchmark images, one folder per subtask"
        return [
            llava_file(LLAVA_QUESTIONS, "LLaVA's MME question file (question_id, image, text, category)"),
            DataFile(path=GT_DIR, kind="dir", description=templates, source=f"eval_tool.zip from {_MME_PAGE}"),
            image_folder(IMAGES_DIR, images, f"MME_Benchmark_release_version from {_MME_PAGE}"),
        ]

    def load(self, data_root: Path) -> list[Sample]:
        root = Path(data_root)
        jsonl_path = root / LLAVA_QUESTIONS
        gt_files: dict[str, GroundTruth] = {}
        occurrences: Counter[str] = Counter()
        samples: list[Sample] = []
        for where, rec in question_lines(jsonl_path):
            qid, text = str(rec["question_id"]), str(rec["text"])
            category = qid.split("/")[0]
            if category not in ALL_SUBTASKS:
                raise DataError(f"{where}: question_id {qid!r} does not start with an MME subtask name")
            gt_path = root / GT_DIR / f"{category}.txt"
            if category not in gt_files:
                gt_files[category] = read_ground_truth(gt_path)
            stem = image_stem(qid)
            question = converter_question(text, stem, gt_files[category])
            answer = gt_files[category].get((stem, question))
            if answer is None:
                raise DataError(f"{where}: no ground truth for image {stem!r}, question {question!r} in {gt_path}")
            samples.append(
                Sample(
                    id=f"{qid}#{occurrences[qid]}",
                    question=text,
                    images=(ImageRef(path=str(root / IMAGES_DIR / str(rec["image"])), root=str(root)),),
                    target=answer,
                    metadata={
                        "category": category,
                        "question_id": qid,
                        "eval_question": question,
                        "image_name": f"{stem}.txt",
                    },
                )
            )
            occurrences[qid] += 1
        return samples

    def subset_stratum(self, sample: Sample) -> str:
        """``--limit`` subsets keep the 14 subtasks in proportion."""
        return str(sample.metadata["category"])

    def subset_group(self, sample: Sample) -> str:
        """An image's two questions are kept together (calculation.py pairs them)."""
        return str(sample.metadata["question_id"])

    def statistics(self, records: Sequence[Mapping[str, Any]]) -> Estimands:
        return estimands(records)

    def match_answers(self, samples: Sequence[Sample], records: Iterable[dict[str, Any]]) -> dict[str, str]:
        """Join answers by (question_id, prompt); without a prompt, by occurrence of the question_id."""
        return match_in_order(samples, records, lambda s: s.question, lambda _qid, prompt: prompt)

    def lmms_eval_prompt(self, sample: Sample, settings: Settings) -> str:
        """``mme_doc_to_text`` on the ground-truth question (the eval tool's text, not LLaVA's)."""
        pre, post = self.setting(settings, "pre_prompt"), self.setting(settings, "post_prompt")
        return with_image(lmms_eval_prompt(sample.metadata["eval_question"], str(pre), str(post)))

    score_official = header_scorer(score_samples)  # LLaVA's converter + the eval tool's calculation.py
    score_lmms_eval = header_scorer(score_samples_lmms_eval)  # lmms-eval's yes/no parser and aggregation

    def score_path(
        self, path: Path, data_root: Path | None, settings: Settings | None = None, judge: Judge | None = None
    ) -> TaskResult | None:
        """Directory mode: score an eval-tool results folder (14 ``<subtask>.txt`` files, 4 columns) with the
        eval tool's calculation; refused under a protocol with another MME scorer (lmms-eval parses answers
        differently, and a folder holds no question ids to group by)."""
        path = Path(path)
        if not path.is_dir():
            return None
        scorer = self.resolve(settings).get("scorer")
        if scorer != "official":
            raise UsageError(
                f"{path}: an MME eval_tool results folder is scored only by the eval tool's calculation.py"
                f" (scorer 'official', protocol llava15), not by scorer '{scorer}'; score the answers JSONL"
                " or a samples log instead"
            )
        sample_ids = None
        if data_root is not None and (Path(data_root) / LLAVA_QUESTIONS).is_file():
            sample_ids = {
                (s.metadata["category"], s.metadata["image_name"].rsplit(".", 1)[0], s.metadata["eval_question"]): s.id
                for s in self.load(Path(data_root))
            }
        return score_directory(path, self.header, sample_ids)
