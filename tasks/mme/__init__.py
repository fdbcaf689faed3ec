"""MME (perception + cognition yes/no), as LLaVA-1.5 / TinyLLaVA evaluate it with the official eval tool.

Protocols (``default_settings``; a protocol file's [tasks.mme] table overrides them):

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

from harness.data.readers import iter_jsonl, read_tsv, require_fields
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



class MMETask(Task):
    name = "mme"
    version = "1"
    description = "MME: 14 yes/no subtasks; perception and cognition scores (sum of 100*(acc+acc+))."
    judged = False
    headline = ("perception", "cognition")
    changelog: ClassVar[dict[str, str]] = {
        "1": "initial: LLaVA conversion + official eval_tool calculation; lmms-eval protocol (prompt, parser)"
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
    hf_dataset = "lmms-lab/MME"
    record_fields: ClassVar[dict[str, tuple[str, ...]]] = {
        "detail": ("subtask", "pair"),
        "metadata": ("category", "question_id"),
    }

    def data_files(self) -> list[DataFile]:
        return [
            DataFile(
                path=LLAVA_QUESTIONS,
                description="LLaVA's MME question file (question_id, image, text, category)",
                source=LLAVA_EVAL_ZIP,
            ),
            DataFile(
                path=GT_DIR,
                kind="dir",
                description="official eval tool templates with the ground truth (<subtask>.txt)",
                source=f"eval_tool.zip from {_MME_PAGE}",
            ),
            DataFile(
                path=IMAGES_DIR,
                kind="dir",
                needed_for="run",
                description="MME benchmark images, one folder per subtask",
                source=f"MME_Benchmark_release_version from {_MME_PAGE}",
            ),
        ]

    def load(self, data_root: Path) -> list[Sample]:
        root = Path(data_root)
        jsonl_path = root / LLAVA_QUESTIONS
        gt_files: dict[str, GroundTruth] = {}
        occurrences: Counter[str] = Counter()
        samples: list[Sample] = []
        for lineno, rec in iter_jsonl(jsonl_path):
            where = f"{jsonl_path}:{lineno}"
            require_fields(rec, ("question_id", "image", "text"), where)
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
                    images=(ImageRef(path=str(root / IMAGES_DIR / str(rec["image"]))),),
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
        by_prompt: dict[tuple[str, str], list[str]] = {}
        by_qid: dict[str, list[str]] = {}
        for s in samples:
            qid = s.metadata["question_id"]
            by_prompt.setdefault((qid, s.question), []).append(s.id)
            by_qid.setdefault(qid, []).append(s.id)
        seen: Counter[tuple[str, Any]] = Counter()
        out: dict[str, str] = {}
        for rec in records:
            qid = str(rec.get("question_id"))
            prompt = rec.get("prompt")
            key = (qid, None if prompt is None else str(prompt))
            candidates = by_qid.get(qid, []) if prompt is None else by_prompt.get((qid, str(prompt)), [])
            if not candidates:
                continue
            # k-th record of a key goes to the k-th sample of it; extra records overwrite the last one.
            out[candidates[min(seen[key], len(candidates) - 1)]] = str(rec.get("text", ""))
            seen[key] += 1
        return out

    def build_request(self, sample: Sample, settings: Mapping[str, Any]) -> Request:
        if setting_choice(settings, "prompt", ("llava", "lmms-eval"), "llava") == "llava":
            return image_question_request(self.name, sample, settings)
        text = lmms_eval_prompt(
            sample.metadata["eval_question"],
            str(settings.get("pre_prompt", "")),
            str(settings.get("post_prompt", LLAVA_SUFFIX)),
        )
        return make_request(self.name, sample, with_image(text), settings, 16)

    def score(
        self,
        samples: Sequence[Sample],
        responses: Mapping[str, Response],
        settings: Mapping[str, Any] | None = None,
        judge: Judge | None = None,
    ) -> TaskResult:
        header = (self.name, self.version, self.headline)
        if setting_choice(settings or {}, "scorer", ("official", "lmms-eval"), "official") == "lmms-eval":
            return score_samples_lmms_eval(samples, responses, header)
        return score_samples(samples, responses, header)

    def score_path(
        self,
        path: Path,
        data_root: Path | None,
        settings: Mapping[str, Any] | None = None,
        judge: Judge | None = None,
    ) -> TaskResult | None:
        """Directory mode: score an eval-tool results folder (14 ``<subtask>.txt`` files, 4 columns)."""
        path = Path(path)
        if not path.is_dir():
            return None
        sample_ids = None
        if data_root is not None and (Path(data_root) / LLAVA_QUESTIONS).is_file():
            sample_ids = {
                (s.metadata["category"], s.metadata["image_name"].rsplit(".", 1)[0], s.metadata["eval_question"]): s.id
                for s in self.load(Path(data_root))
            }
        return score_directory(path, (self.name, self.version, self.headline), sample_ids)

    def prepare(self, source: Path, root: Path) -> None:
        from tasks.mme.prepare import prepare_root

        prepare_root(source, root)

    def write_demo(self, root: Path, seed: int) -> None:
        from tasks.mme.demo import write_demo

        write_demo(root, seed)
