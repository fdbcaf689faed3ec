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

from harness.data.prepare import find_files, iter_rows, note, write_file
from harness.errors import DataError
from tasks.common.prepare import present_columns
from tasks.mmbench.prepare import L2_NAMES, REQUIRED, ROUND, TSV_COLUMNS, tsv_row, tsv_text

HF_DATASET = "lmms-lab/MMBench"
CN_PATTERN = "cn/dev-*.parquet"
HF_PATTERNS = {"mmbench_cn": {"lmms-lab/MMBench": (CN_PATTERN,), "lmms-lab-encoder/MMBench": (CN_PATTERN,)}}
CN_FILE = "mmbench/mmbench_dev_cn_20231003.tsv"


def prepare_root(source: Path, root: Path) -> None:
    """Write the MMBench-CN dev TSV under ``root`` from the ``cn/dev`` parquet files under ``source``."""
    source, root = Path(source), Path(root)
    paths = find_files(source, (CN_PATTERN,), "MMBench-CN dev parquet files")
    present = present_columns(paths, REQUIRED, "the MMBench-CN dev split")
    l2_name = next((n for n in L2_NAMES if n in present), None)
    for name in TSV_COLUMNS:
        if (l2_name is None) if name == "l2-category" else name not in present:
            note(f"mmbench_cn: the copy has no '{name}' column; its cells are empty")
    columns = [c for c in TSV_COLUMNS if c in present] + ([l2_name] if l2_name else [])
    rows: list[list[str]] = []
    seen: set[int] = set()
    for where, row in iter_rows(paths, "mmbench_cn dev rows", columns):
        out = tsv_row(row, l2_name, where)
        index = int(out[0])
        if index in seen:
            raise DataError(f"{where}: index {index} repeats an earlier row (overlapping parquet files?)")
        seen.add(index)
        rows.append(out)
    questions = len({i % ROUND for i in seen})
    note(f"mmbench_cn: {len(rows)} rows / {questions} questions from {HF_DATASET} cn/dev")
    write_file(root / CN_FILE, tsv_text(rows))
