"""MMBench dev (English), as LLaVA-1.5 / TinyLLaVA evaluate it: the 20230712 TSV + VLMEvalKit CircularEval.

Data file (under the data root): ``mmbench/mmbench_dev_20230712.tsv``, the legacy file LLaVA-1.5
and TinyLLaVA ran (base64 images inside, CircularEval passes as rows at ``index + k*1_000_000``).
When it is absent, ``load`` reads VLMEvalKit's ``mmbench/MMBench_DEV_EN.tsv`` (or
``..._V11.tsv``) instead, whose question set differs (1164 dev questions against 1176), so its
scores are not comparable with the papers'. ``data_files`` declares the legacy file, so the data
check asks for it.

One sample per TSV row (sample id = the row's ``index``). A row whose base64 image does not decode
still loads; its image fails to open when a model is run, and that sample is recorded as an error.

Protocols (the [tasks.mmbench] tables of ``harness/protocols/*.toml``): ``llava15`` is
``model_vqa_mmbench.py --single-pred-prompt`` (hint, question, the options up to the first missing
one, the single-letter instruction; 1024 new tokens) scored by VLMEvalKit's CircularEval;
``lmms-eval`` is lmms-eval's ``mmbench_en_dev`` prompt and matcher. Without a judge, a pass no
heuristic can read is wrong (VLMEvalKit's exact matching); with one (``score(..., judge=...)``) it
goes to the choice extractor as in the official evaluation.

Answers files: LLaVA's answers JSONL (``question_id`` = TSV index; a later line for the same id
replaces an earlier one, as the submission converter's row assignment does); unknown ids are
ignored. ``export`` writes the xlsx LLaVA uploads to the MMBench server.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from harness.judging.contract import Judge
from harness.stats.bootstrap import Estimands
from harness.task import Settings
from harness.types import DataFile, ImageRef, Response, Sample, TaskResult
from tasks.common.base import LlavaTask
from tasks.common.requests import with_image
from tasks.mmbench.scorer import EXTRACTORS, Extractor, estimands, score_circular
from tasks.mmbench.tsv import (
    LEGACY_FILE,
    ROUND,
    VLMEVAL_FILES,
    add_circular_passes,
    decode_image,
    find_tsv,
    image_strings,
    is_legacy,
    read_table,
)

SUFFIX = "Answer with the option's letter from the given choices directly."
_LLAVA_EVAL = "https://github.com/haotian-liu/LLaVA/blob/main/docs/Evaluation.md (MMBench: mmbench_dev_20230712.tsv)"


class MMBenchTask(LlavaTask):
    name = "mmbench"
    description = (
        "MMBench dev (en, 20230712): multiple choice with CircularEval (VLMEvalKit); a judge only extracts "
        "letters the heuristics cannot read."
    )
    headline = ("circular",)
    changelog: ClassVar[dict[str, str]] = {"1": "initial: LLaVA mmbench prompt + VLMEvalKit (2024-02) CircularEval"}
    # Both are CircularEval; tasks/mmbench/scorer.py reads ``scorer`` for the answer extractor it uses.
    scorers: ClassVar[dict[str, str]] = dict.fromkeys(("vlmevalkit", "lmms-eval"), "circular_eval")
    hf_dataset = "lmms-lab/MMBench_EN"  # the English dev copy with the 4377 rows of mmbench_dev_20230712
    export_filename = "mmbench_dev_submission.xlsx"
    record_fields: ClassVar[dict[str, tuple[str, ...]]] = {"detail": ("group",)}
    limit_counts = "groups"
    # What a language variant (tasks/mmbench_cn) changes: its files, its instructions, its judge prompts.
    legacy_file: ClassVar[str] = LEGACY_FILE
    fallback_files: ClassVar[tuple[str, ...]] = VLMEVAL_FILES
    llava_instruction: ClassVar[str] = SUFFIX
    lmms_eval_instruction: ClassVar[str] = SUFFIX
    extractors: ClassVar[dict[str, Extractor]] = EXTRACTORS

    def data_files(self) -> list[DataFile]:
        return [
            DataFile(
                path=LEGACY_FILE,
                needed_for="score",
                description=(
                    "MMBench dev 20230712 TSV with base64 images and circular passes (or VLMEvalKit's "
                    "newer MMBench_DEV_EN.tsv / _V11.tsv)"
                ),
                source=_LLAVA_EVAL,
                alternatives=list(VLMEVAL_FILES),
            )
        ]

    def data_path(self, data_root: Path) -> Path:
        """The TSV to read: ``legacy_file`` if present, else the first of ``fallback_files`` present."""
        return find_tsv(Path(data_root), (self.legacy_file, *self.fallback_files))

    def load(self, data_root: Path) -> list[Sample]:
        path = self.data_path(Path(data_root))
        legacy = is_legacy(path, self.legacy_file)
        table = read_table(path) if legacy else add_circular_passes(read_table(path))
        images = image_strings(table, references=not legacy)
        decoded: dict[str, bytes] = {}  # circular copies repeat their base's image: decode once
        samples: list[Sample] = []
        for row in table.rows:
            text = images[row.index]
            if text not in decoded:
                decoded[text] = decode_image(text)
            hint = row.get("hint")
            llava_hint = None if hint is None or hint.lower() in ("nan", "none") else hint
            samples.append(
                Sample(
                    id=str(row.index),
                    question=row.get("question") or "",
                    images=(ImageRef(data=decoded[text]),),
                    target=row.get("answer"),
                    metadata={
                        "index": row.index,
                        "group": row.group,
                        "pass": row.round,
                        "question": row.get("question") or "",
                        "hint": hint,
                        "hint_text": row.na_texts.get("hint", "") if hint is None else hint,  # as written
                        "llava_hint": llava_hint,
                        "choices": row.choices(),
                        "llava_options": row.llava_options(),
                        "category": row.get("category"),
                        "l2_category": row.get("l2-category"),
                        "split": row.get("split"),
                        "source_file": table.path.name,
                    },
                )
            )
        return samples

    def subset_stratum(self, sample: Sample) -> str:
        """``--limit`` subsets keep the (L3) categories in proportion."""
        return str(sample.metadata.get("category") or "")

    def subset_group(self, sample: Sample) -> str:
        """A question is kept with all its circular passes; ``--limit`` counts questions."""
        return str(sample.metadata["group"])

    def statistics(self, records: Sequence[Mapping[str, Any]]) -> Estimands:
        return estimands(records)

    def llava_prompt(self, sample: Sample, settings: Settings) -> str:
        """model_vqa_mmbench.py --single-pred-prompt: image, [hint\\n]question, option lines, instruction."""
        meta = sample.metadata
        text = meta["question"]
        if meta["llava_hint"] is not None:
            text = f"{meta['llava_hint']}\n{text}"
        for letter, option in meta["llava_options"]:
            text += f"\n{letter}. {option}"
        return with_image(f"{text}\n{self.llava_instruction}")

    def lmms_eval_prompt(self, sample: Sample, settings: Settings) -> str:
        """lmms-eval's mmbench_doc_to_text: "{hint} {question} There are several options:\\nA. ...", "\\n" and its
        post_prompt (the protocol's ``post_prompt`` when it gives one, else "\\n" + ``lmms_eval_instruction``)."""
        meta = sample.metadata
        options = "There are several options:\n" + "".join(
            f"{c}. {v}\n" for c, v in sorted(meta["choices"].items()) if c in "ABCDE"
        )
        options = options.rstrip("\n")
        hint = self.lmms_eval_hint(sample)
        query = f"{hint} {meta['question']} {options}" if hint is not None else f"{meta['question']} {options}"
        post = settings.get("post_prompt", f"\n{self.lmms_eval_instruction}")
        return with_image(f"{query}\n{post}")

    def lmms_eval_hint(self, sample: Sample) -> str | None:
        """The hint lmms-eval's prompt shows (en: a cell pandas reads as NA, "nan" included, shows none)."""
        return sample.metadata["hint"]

    def circular_eval(
        self, samples: Sequence[Sample], responses: Mapping[str, Response], settings: Settings, judge: Judge | None
    ) -> TaskResult:
        """CircularEval with VLMEvalKit's or lmms-eval's answer extraction (and the judge, when given)."""
        return score_circular(
            samples, responses, self.header, settings["scorer"], judge, settings, extractors=self.extractors
        )

    def match_answers(self, samples: Sequence[Sample], records: Iterable[dict[str, Any]]) -> dict[str, str]:
        """LLaVA answers by ``question_id`` (the TSV index, int or text); a later line wins; others ignored."""
        by_index = {s.metadata["index"]: s.id for s in samples}
        out: dict[str, str] = {}
        for rec in records:
            try:
                index = int(str(rec.get("question_id")).strip())
            except ValueError:
                continue
            if index in by_index:
                out[by_index[index]] = str(rec.get("text", ""))
        return out

    def export(
        self, samples: Sequence[Sample], responses: Mapping[str, Response], data_root: Path, output: Path
    ) -> Path:
        """LLaVA's convert_mmbench_for_submission.py: the TSV's rows minus six columns, plus ``prediction``."""
        from tasks.mmbench.export import write_submission

        predictions = {s.metadata["index"]: responses[s.id].text for s in samples if s.id in responses}
        return write_submission(self.data_path(Path(data_root)), predictions, Path(output))


__all__ = ["ROUND", "MMBenchTask"]
