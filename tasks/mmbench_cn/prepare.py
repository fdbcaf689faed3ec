"""MMBench-CN dev from lmms-lab's parquet copy, as the TSV LLaVA-1.5 reads (``mmbench_dev_cn_20231003.tsv``).

Writes ``mmbench/mmbench_dev_cn_20231003.tsv`` in the legacy layout of ``tasks/mmbench/prepare.py``
(columns ``index, question, hint, A, B, C, D, answer, category, image, source, l2-category, comment,
split``; every row, circular copies included, with its own base64 image; missing cells empty), in the
order of the copy.

Copy: ``lmms-lab/MMBench`` (what lmms-eval's ``mmbench_cn_dev`` reads, also mirrored as
``lmms-lab-encoder/MMBench``), config ``cn``, split ``dev``, files ``cn/dev-*.parquet``; columns
``index`` (text), ``question``, ``hint``, ``A``-``D``, ``answer``, ``category``, ``image`` (Image),
``source``, ``L2-category``, ``comment``, ``split``: the dataset card's ``dataset_info``; lmms-eval
``tasks/mmbench/_default_template_mmbench_cn_yaml`` (dataset_name ``cn``) and ``mmbench_cn_dev.yaml``
(split ``dev``).

Limitations: whether the copy's dev split is row for row the 20231003 file cannot be checked here; its
row and question counts are recorded. Images are base64 of the bytes the copy stores.
"""

from __future__ import annotations

from pathlib import Path

from harness.data.prepare import find_files, note, write_file
from tasks.mmbench.prepare import dev_rows, tsv_text

HF_DATASET = "lmms-lab/MMBench"
CN_PATTERN = "cn/dev-*.parquet"
HF_PATTERNS = {"mmbench_cn": {"lmms-lab/MMBench": (CN_PATTERN,), "lmms-lab-encoder/MMBench": (CN_PATTERN,)}}
CN_FILE = "mmbench/mmbench_dev_cn_20231003.tsv"


def prepare_root(source: Path, root: Path) -> None:
    """Write the MMBench-CN dev TSV under ``root`` from the ``cn/dev`` parquet files under ``source``."""
    source, root = Path(source), Path(root)
    paths = find_files(source, (CN_PATTERN,), "MMBench-CN dev parquet files")
    rows, questions = dev_rows(paths, "mmbench_cn", "the MMBench-CN dev split")
    note(f"mmbench_cn: {len(rows)} rows / {questions} questions from {HF_DATASET} cn/dev")
    write_file(root / CN_FILE, tsv_text(rows))
