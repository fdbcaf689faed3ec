"""MMBench-CN: LLaVA's Chinese prompt, the submission xlsx, VLMEvalKit's Chinese judge prompt, CircularEval,
``data prepare`` and demo data.

Golden values: produced on 2026-12-03 by running, in /tmp copies, on the TSV ``write_cn_tsv`` writes:

- LLaVA ``llava/eval/model_vqa_mmbench.py`` @ 0a16dea with ``--lang cn --single-pred-prompt`` (the
  arguments of ``scripts/v1_5/eval/mmbench_cn.sh``), with the model, tokenizer and torch replaced by
  stubs that return the conversation's user message as the generated text: ``REQUESTS`` is the
  ``text`` of each answers line (the request the model got, image token included);
- LLaVA ``scripts/convert_mmbench_for_submission.py`` @ 0a16dea on an answers file with ``PREDICTIONS``,
  the xlsx read back with pandas: ``XLSX`` (pandas reads the formula cell ``=1+1`` openpyxl wrote as
  NaN; we store it as text, as tasks/mmbench/export.py documents);
- VLMEvalKit ``build_prompt_cn`` (``vlmeval/evaluate/multiple_choice.py`` @ 996dc62, the function
  alone) on the arguments of ``test_vlmevalkit_judge_gets_the_chinese_prompt``: ``PROMPT_CN``.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from harness.protocol import load_protocol
from harness.registry import get_task
from harness.types import Response
from tasks.mmbench import MMBenchTask
from tasks.mmbench.export import read_submission
from tasks.mmbench_cn import MMBenchCNTask
from tasks.mmbench_cn import demo as cn_demo

COLUMNS = ["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "image", "source", "l2-category",
           "comment", "split"]  # fmt: skip
IMG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
BASE = [  # (index, question, hint, options, answer of the base row)
    (1, "图中的物体是什么颜色？", "", ["红色", "绿色", "蓝色"], "A"),
    (2, "哪一个是正确的？", "请仔细观察图片。", ["猫", "狗"], "B"),
    (3, "What is 2+2?", "nan", ["3", "4", "None", ""], "B"),
    (4, "图中有几个圆？", "", ["一个", "两个", "三个", "四个"], "D"),
]
S = "\n请直接回答选项字母。"
REQUESTS = {
    "1": "<image>\n图中的物体是什么颜色？\nA. 红色\nB. 绿色\nC. 蓝色" + S,
    "2": "<image>\n请仔细观察图片。\n哪一个是正确的？\nA. 猫\nB. 狗" + S,
    "3": "<image>\nWhat is 2+2?\nA. 3\nB. 4" + S,
    "4": "<image>\n图中有几个圆？\nA. 一个\nB. 两个\nC. 三个\nD. 四个" + S,
    "1000001": "<image>\n图中的物体是什么颜色？\nA. 蓝色\nB. 红色\nC. 绿色" + S,
    "1000002": "<image>\n请仔细观察图片。\n哪一个是正确的？\nA. 狗\nB. 猫" + S,
    "1000003": "<image>\nWhat is 2+2?" + S,
    "1000004": "<image>\n图中有几个圆？\nA. 四个\nB. 一个\nC. 两个\nD. 三个" + S,
    "2000001": "<image>\n图中的物体是什么颜色？\nA. 绿色\nB. 蓝色\nC. 红色" + S,
    "2000003": "<image>\nWhat is 2+2?\nA. 4" + S,
    "2000004": "<image>\n图中有几个圆？\nA. 三个\nB. 四个\nC. 一个\nD. 两个" + S,
    "3000004": "<image>\n图中有几个圆？\nA. 两个\nB. 三个\nC. 四个\nD. 一个" + S,
}
PREDICTIONS = {1: "A", 1000001: "B", 2000001: "C", 2: "B", 1000002: "=1+1", 3: "答案是B", 4: "D"}
XLSX = [
    [1, "图中的物体是什么颜色？", "红色", "绿色", "蓝色", None, "A", "A", "dev"],
    [2, "哪一个是正确的？", "猫", "狗", None, None, "B", "B", "dev"],
    [3, "What is 2+2?", "3", "4", None, None, "答案是B", "B", "dev"],
    [4, "图中有几个圆？", "一个", "两个", "三个", "四个", "D", "D", "dev"],
    [1000001, "图中的物体是什么颜色？", "蓝色", "红色", "绿色", None, "B", "B", "dev"],
    [1000002, "哪一个是正确的？", "狗", "猫", None, None, None, "A", "dev"],  # ours: "=1+1" as text
    [1000003, "What is 2+2?", None, "3", "4", None, None, "C", "dev"],
    [1000004, "图中有几个圆？", "四个", "一个", "两个", "三个", None, "A", "dev"],
    [2000001, "图中的物体是什么颜色？", "绿色", "蓝色", "红色", None, "C", "C", "dev"],
    [2000003, "What is 2+2?", "4", None, "3", None, None, "A", "dev"],
    [2000004, "图中有几个圆？", "三个", "四个", "一个", "两个", None, "B", "dev"],
    [3000004, "图中有几个圆？", "两个", "三个", "四个", "一个", None, "C", "dev"],
]
PROMPT_CN = (
    "你是一个帮助我匹配答案与单选题中多个选项的 AI 助手。"
    "你会被提供：一个问题，多个选项，一个答案。你的任务是找到与答案意义最相近的选项。"
    "如果所有选项的意义都与答案显著不同，则输出 Z。"
    "你应该输出一个单个的大写字母，例如 A, B, C, D（如果它们是有效选项），或 Z。例 1:"
    "问题: 图中最主要的物体是什么?\n选项: A. 泰迪熊 B. 兔子 C. 猫 D. 狗\n答案: 一只可爱的泰迪熊\n输出: A\n"
    "例 2: \n问题: 图中最主要的物体是什么?\n选项: A. 泰迪熊 B. 兔子 C. 猫 D. 狗\n答案: 蜘蛛\n输出: Z\n"
    "例 3: \n问题: 图中的物体是什么颜色？?\n选项: There are several options: "
    "\nA. 红色\nB. 绿色\n\n答案: 红的\n输出: "
)


def cn_rows() -> list[list[str]]:
    """The golden TSV's rows: each base question and its passes, options rotated (bases first)."""
    rows = []
    for idx, question, hint, options, answer in BASE:
        live = [o for o in options if o]
        n = len(live)
        for k in range(n):
            rotated = live[-k:] + live[:-k] if k else live
            letter = "ABCD"[("ABCD".index(answer) + k) % n]
            rows.append([str(idx + k * 1_000_000), question, hint, *rotated, *[""] * (4 - n), letter, "cat", IMG,
                         "syn", "attribute_reasoning", "", "dev"])  # fmt: skip
    rows.sort(key=lambda r: (int(r[0]) // 1_000_000, int(r[0])))
    return rows


def write_cn_tsv(root: Path, name: str = "mmbench_dev_cn_20231003.tsv") -> Path:
    path = root / "mmbench" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(cn_rows())
    return root


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return write_cn_tsv(tmp_path / "root")


def test_llava_prompts_equal_model_vqa_mmbench_lang_cn(root: Path) -> None:
    task = MMBenchCNTask()
    settings = load_protocol("llava15").settings_for(task)
    samples = task.load(root)
    assert {s.id: task.build_request(s, settings).prompt for s in samples} == REQUESTS


def test_export_equals_llava_converter(root: Path, tmp_path: Path) -> None:
    task = MMBenchCNTask()
    samples = task.load(root)
    responses = {str(i): Response(text=t) for i, t in PREDICTIONS.items()}
    written = task.export(samples, responses, root, tmp_path / task.export_filename)
    table = read_submission(written)
    assert table[0] == ["index", "question", "A", "B", "C", "D", "prediction", "answer", "split"]
    expected = [list(r) for r in XLSX]
    expected[5][6] = "=1+1"  # kept as text (LLaVA's openpyxl makes it a formula pandas reads as NaN)
    assert table[1:] == expected


def test_vlmevalkit_judge_gets_the_chinese_prompt() -> None:
    options = [("A", "红色"), ("B", "绿色")]
    cn = MMBenchCNTask.extractors["vlmevalkit"]
    assert cn.judge_prompt("图中的物体是什么颜色？", options, "红的") == PROMPT_CN
    english = MMBenchTask.extractors["vlmevalkit"].judge_prompt("What color?", options, "red")
    assert cn.judge_prompt("What color?", options, "red") == english  # no CJK ideograph: the English prompt
    assert MMBenchTask.extractors["vlmevalkit"].cn_prompt_file is None  # mmbench keeps its prompt
    assert MMBenchCNTask.extractors["lmms-eval"] == MMBenchTask.extractors["lmms-eval"]


def test_circular_eval_without_judge(root: Path) -> None:
    task = MMBenchCNTask()
    samples = task.load(root)
    responses = {str(i): Response(text=t) for i, t in PREDICTIONS.items()}
    result = task.score(samples, responses)
    # question 1: every pass right; 2: "=1+1" reads as no letter; 3: "答案是B" reads as no letter; 4: passes missing
    assert result.metrics["circular"].value == pytest.approx(25.0)
    assert result.metrics["vanilla"].value == pytest.approx(75.0)
    all_right = {s.id: Response(text=str(s.target)) for s in samples}
    assert task.score(samples, all_right).metrics["circular"].value == pytest.approx(100.0)


def test_lmms_eval_prompt_uses_the_english_option_header_and_chinese_post_prompt(root: Path) -> None:
    task = MMBenchCNTask()
    settings = load_protocol("lmms-eval").settings_for(task)
    sample = next(s for s in task.load(root) if s.id == "2")
    request = task.build_request(sample, settings)
    assert request.prompt == (
        "<image>\n请仔细观察图片。 哪一个是正确的？ There are several options:\nA. 猫\nB. 狗\n\n"
        "请直接使用所提供的选项字母作为答案回答。"
    )
    assert request.generation.max_new_tokens == 256 and not request.generation.stop


def test_vlmevalkit_file_is_the_fallback(tmp_path: Path) -> None:
    root = write_cn_tsv(tmp_path, "MMBench_DEV_CN.tsv")
    samples = MMBenchCNTask().load(root)
    assert len(samples) == len(REQUESTS) and samples[0].metadata["source_file"] == "MMBench_DEV_CN.tsv"


def test_the_english_file_is_not_read(tmp_path: Path) -> None:
    from harness.errors import DataError

    write_cn_tsv(tmp_path, "mmbench_dev_20230712.tsv")
    with pytest.raises(DataError, match=r"mmbench_dev_cn_20231003\.tsv"):
        MMBenchCNTask().load(tmp_path)


def test_entry_point_and_protocols() -> None:
    task = get_task("mmbench_cn")
    assert isinstance(task, MMBenchCNTask) and task.headline == ("circular",)
    for name in ("llava15", "lmms-eval"):
        assert load_protocol(name).supports(task)


def test_prepare_from_the_lmms_lab_cn_split(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (1, 2, 3)).save(buffer, format="PNG")
    rows: list[dict[str, Any]] = []
    for r in cn_rows():
        cells = dict(zip(COLUMNS, r))
        row = {c: (cells[c] or None) for c in COLUMNS if c not in ("image", "l2-category")}
        rows.append({**row, "L2-category": cells["l2-category"], "image": {"bytes": buffer.getvalue(), "path": None}})
    source, root = tmp_path / "src", tmp_path / "root"
    (source / "cn").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), source / "cn/dev-00000-of-00001.parquet")
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "data", "prepare", "mmbench_cn", "--source", str(source), "--data-root",
         str(root), "--no-progress"], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    task = MMBenchCNTask()
    samples = task.load(root)
    assert {s.id for s in samples} == set(REQUESTS)
    assert samples[0].images[0].open().size == (4, 4)
    record = json.loads((root / "harness_sources/mmbench_cn.json").read_text(encoding="utf-8"))
    assert record["repo"] == "lmms-lab/MMBench"


def test_demo_writes_the_cn_file(tmp_path: Path) -> None:
    cn_demo.write_demo(tmp_path, 7)
    samples = MMBenchCNTask().load(tmp_path)
    assert len(samples) > 40 and not (tmp_path / "mmbench/mmbench_dev_20230712.tsv").exists()
    assert any(s.metadata["hint"] == cn_demo.CN_HINT for s in samples)
    image = base64.b64decode(base64.b64encode(samples[0].images[0].data or b""))
    assert image.startswith(b"\x89PNG")


def test_score_cli_on_a_llava_answers_file(root: Path, tmp_path: Path) -> None:
    answers = tmp_path / "answers.jsonl"
    lines = [{"question_id": i, "round_id": 0, "prompt": "", "text": t} for i, t in PREDICTIONS.items()]
    answers.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines), encoding="utf-8")
    cmd = [sys.executable, "-m", "harness", "score", "mmbench_cn", "--answers", str(answers), "--data-root", str(root)]
    proc = subprocess.run([*cmd, "--json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["scores"]["circular"] == pytest.approx(25.0)
