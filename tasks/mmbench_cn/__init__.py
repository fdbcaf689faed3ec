"""MMBench-CN dev (Chinese, 20231003), as LLaVA-1.5 evaluates it: the ``mmbench`` task's reader, prompt and
CircularEval with the Chinese file and instructions.

Data file (under the data root): ``mmbench/mmbench_dev_cn_20231003.tsv``, the file LLaVA's
``scripts/v1_5/eval/mmbench_cn.sh`` runs (base64 images inside, CircularEval passes as rows at
``index + k*1_000_000``, the legacy layout of ``mmbench``). When it is absent, ``load`` reads
VLMEvalKit's ``mmbench/MMBench_DEV_CN.tsv`` (or ``..._V11.tsv``), whose question set may differ.

Protocols (the [tasks.mmbench_cn] tables of ``harness/protocols/*.toml``):

- ``llava15``: ``model_vqa_mmbench.py --lang cn --single-pred-prompt`` (LLaVA @ 0a16dea): hint,
  question and option lines as in ``mmbench``, then the instruction ``请直接回答选项字母。``; 1024
  new tokens; VLMEvalKit's CircularEval (@ 996dc62). A judge, when given, gets VLMEvalKit's Chinese
  choice-extractor prompt (``build_prompt_cn``) for questions with a CJK ideograph (its ``cn_string``
  test), the English one otherwise.
- ``lmms-eval``: ``mmbench_cn_dev`` (v0.7.3): ``cn_utils.mmbench_doc_to_text`` builds the option list
  with the sys_prompt of ``mmbench.yaml`` (the English "There are several options:", not the
  ``有如下几个选项：`` of ``mmbench_cn.yaml``: cn_utils reads the former), then ``\\n`` + its post_prompt
  ``\\n请直接使用所提供的选项字母作为答案回答。``; max_new_tokens 256; lmms-eval's matcher and extractor. A hint
  cell holding the text ``nan`` is shown (cn_utils tests ``pd.notna`` only; en_utils also drops "nan").

``export`` writes the xlsx of LLaVA's ``convert_mmbench_for_submission.py`` for the Chinese file.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import ClassVar

from harness.types import DataFile, Sample
from tasks.mmbench import MMBenchTask
from tasks.mmbench.scorer import EXTRACTORS, Extractor

CN_FILE = "mmbench/mmbench_dev_cn_20231003.tsv"
CN_VLMEVAL_FILES = ("mmbench/MMBench_DEV_CN.tsv", "mmbench/MMBench_DEV_CN_V11.tsv")
LLAVA_CN_INSTRUCTION = "请直接回答选项字母。"  # model_vqa_mmbench.py, --lang cn --single-pred-prompt
LMMS_EVAL_CN_INSTRUCTION = "请直接使用所提供的选项字母作为答案回答。"  # mmbench_cn's post_prompt, less its "\n"
CN_PROMPT_FILE = str(Path(__file__).parent / "choice_extractor_prompt_cn.txt")
_LLAVA_EVAL = (
    "https://github.com/haotian-liu/LLaVA/blob/main/docs/Evaluation.md (MMBench-CN: mmbench_dev_cn_20231003.tsv)"
)


class MMBenchCNTask(MMBenchTask):
    name = "mmbench_cn"
    description = (
        "MMBench-CN dev (cn, 20231003): multiple choice with CircularEval (VLMEvalKit), LLaVA's Chinese "
        "instruction; a judge only extracts letters the heuristics cannot read."
    )
    changelog: ClassVar[dict[str, str]] = {
        "1": "initial: LLaVA mmbench_cn prompt (--lang cn) + VLMEvalKit (2024-02) CircularEval"
    }
    hf_dataset = "lmms-lab/MMBench"  # config cn, split dev (what lmms-eval's mmbench_cn_dev reads)
    export_filename = "mmbench_cn_dev_submission.xlsx"
    legacy_file = CN_FILE
    fallback_files = CN_VLMEVAL_FILES
    llava_instruction = LLAVA_CN_INSTRUCTION
    lmms_eval_instruction = LMMS_EVAL_CN_INSTRUCTION
    extractors: ClassVar[dict[str, Extractor]] = {
        **EXTRACTORS,
        "vlmevalkit": replace(EXTRACTORS["vlmevalkit"], cn_prompt_file=CN_PROMPT_FILE),
    }

    def data_files(self) -> list[DataFile]:
        return [
            DataFile(
                path=CN_FILE,
                needed_for="score",
                description=(
                    "MMBench-CN dev 20231003 TSV with base64 images and circular passes (or VLMEvalKit's "
                    "MMBench_DEV_CN.tsv / _V11.tsv)"
                ),
                source=_LLAVA_EVAL,
                alternatives=list(CN_VLMEVAL_FILES),
            )
        ]

    def lmms_eval_hint(self, sample: Sample) -> str | None:
        """cn_utils shows any hint that is not missing (``pd.notna``): the text "nan" too, unlike en_utils."""
        return sample.metadata["hint_text"] or None

    def prepare(self, source: Path, root: Path) -> None:
        from tasks.mmbench_cn.prepare import prepare_root

        prepare_root(source, root)

    def write_demo(self, root: Path, seed: int) -> None:
        from tasks.mmbench_cn.demo import write_demo

        write_demo(root, seed)


__all__ = ["MMBenchCNTask"]
