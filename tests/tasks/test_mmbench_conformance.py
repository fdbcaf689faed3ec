"""MMBench dev against LLaVA-1.5-13B's published answers and upload file (skipped without the realdata folder).

The 20230712 TSV itself is not in the realdata folder: one is rebuilt from the upload file's
derived CSV (index, question, options, answer, split), the hints recovered from the prompts in the
answers JSONL, placeholder categories and a tiny PNG as every image.
"""

from __future__ import annotations

import base64
import csv
import io
from pathlib import Path

import pytest
from PIL import Image

from harness.data.readers import read_jsonl
from harness.protocol import load_protocol
from harness.types import Response
from tasks.mmbench import MMBenchTask
from tasks.mmbench.export import read_submission
from tests.helpers.paths import REALDATA

MMB = REALDATA / "mmbench"
ANSWERS = MMB / "answers/mmbench_dev_20230712/llava-v1.5-13b.jsonl"
UPLOAD = MMB / "answers_upload/mmbench_dev_20230712/llava-v1.5-13b.xlsx"
DERIVED = MMB / "answers_upload/mmbench_dev_20230712/llava-v1.5-13b.xlsx.derived.csv"
COLUMNS = ("index", "question", "hint", "A", "B", "C", "D", "answer", "category", "image", "source",
           "l2-category", "comment", "split")  # fmt: skip
SUFFIX = "\nAnswer with the option's letter from the given choices directly."


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real MMBench data not found: {path} (set HARNESS_REALDATA)")
    return path


def _tiny_png() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (2, 2), (200, 30, 30)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _hint(prompt: str, row: dict[str, str]) -> str:
    tail = row["question"] + "".join(f"\n{c}. {row[c]}" for c in "ABCD" if row[c] != "")
    assert prompt.endswith(tail)
    head = prompt[: -len(tail)]
    assert head == "" or head.endswith("\n")
    return head[:-1]


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return read_jsonl(_need(ANSWERS))


@pytest.fixture(scope="module")
def root(records: list[dict], tmp_path_factory: pytest.TempPathFactory) -> Path:
    with _need(DERIVED).open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    prompts = {int(r["question_id"]): r["prompt"] for r in records}
    image = _tiny_png()
    base = tmp_path_factory.mktemp("mmb")
    (base / "mmbench").mkdir()
    with (base / "mmbench/mmbench_dev_20230712.tsv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in rows:
            cells = dict(row)
            cells.update(
                hint=_hint(prompts[int(row["index"])], row),
                category="placeholder_l3",
                image=image,
                source="realdata",
                comment="",
            )
            cells["l2-category"] = "coarse_perception"
            writer.writerow([cells[c] for c in COLUMNS])
    return base


@pytest.fixture(scope="module")
def loaded(root: Path, records: list[dict]):
    task = MMBenchTask()
    samples = task.load(root)
    texts = task.match_answers(samples, records)
    return task, samples, {sid: Response(text=t) for sid, t in texts.items()}


def test_rows_groups_and_prompts(loaded, records: list[dict]) -> None:
    task, samples, responses = loaded
    assert len(samples) == 4377 and len(responses) == 4377
    assert len({s.metadata["group"] for s in samples}) == 1176
    settings = load_protocol("llava15").settings_for(task)
    by_id = {s.id: s for s in samples}
    for rec in records:
        prompt = task.build_request(by_id[str(rec["question_id"])], settings).prompt
        assert prompt == "<image>\n" + rec["prompt"] + SUFFIX, rec["question_id"]
        assert [o for _, o in by_id[str(rec["question_id"])].metadata["llava_options"]] == rec["options"]


def test_circular_accuracy_reproduces_published_67_7(loaded) -> None:
    task, samples, responses = loaded
    result = task.score(samples, responses)
    circular = result.metrics["circular"]
    assert circular.n == 1176
    assert round(circular.value * 1176 / 100) == 796
    assert round(circular.value, 2) == 67.69
    assert round(result.metrics["vanilla"].value, 2) == 75.43
    assert result.n_parse_failures == 0 and result.n_missing == 0
    assert result.breakdowns["l2_category"]["coarse_perception"].value == pytest.approx(circular.value)


def test_export_reproduces_llava_upload_file(loaded, root: Path, tmp_path: Path) -> None:
    task, samples, responses = loaded
    written = task.export(samples, responses, root, tmp_path / task.export_filename)
    assert read_submission(written) == read_submission(_need(UPLOAD))
