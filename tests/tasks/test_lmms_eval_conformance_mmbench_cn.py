"""``harness score mmbench_cn --protocol lmms-eval`` against lmms-eval 0.7.3's ``mmbench_cn_dev`` task code.

As for ``mmbench`` in tests/tasks/test_lmms_eval_conformance.py: every circular pass is a document in
lmms-lab/MMBench's ``cn`` schema (Chinese questions and options here), our TSV is made from them by the
task's own ``prepare`` (``cn/dev-*.parquet``), and crafted answers are scored by our CLI and by
lmms-eval's YAML task without a judge (its extractor pointed at a closed local port, so an unmatched
pass goes to its seeded random letter). Each question has a category of its own, so lmms-eval's
per-category accuracies give the per-question results. Our lmms-eval prompt must equal
``cn_utils.mmbench_doc_to_text`` with the task's kwargs. Expected values only come from lmms-eval's code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import tests.tasks.test_lmms_eval_conformance as base
from bench.lmms_eval_env import ensure_venv
from harness.protocol import load_protocol
from tasks.mmbench_cn import MMBenchCNTask
from tests.helpers.lmms_reference import lmms_references

pytestmark = pytest.mark.slow

QUESTIONS: list[tuple[list[str], int, str | None, list[str]]] = [
    # (options, answer position in the base row, hint, one response template per pass)
    (["红色", "绿色", "蓝色"], 0, None, ["{ans}", "{ans}.", "答案是 {ans}"]),
    (["猫", "狗"], 1, "请仔细观察图片。", ["{ans}", "{wrong}"]),
    (["一个", "两个", "三个", "四个"], 3, None, ["({ans})", "{text}", "选项{ans}", "{ans}"]),
    (["是", "否"], 0, None, ["{low}", "{ans}"]),
    (["上", "下", "左"], 2, "nan", ["<think>想一想</think> {ans}", "{ans}", "{ans}"]),
]  # fmt: skip


def cn_scores(ref: dict[str, Any], docs: list[dict[str, Any]]) -> list[float | None]:
    categories = ref["files"]["submissions/mmbench_cn_dev_results.json"]["category_acc"]
    return [float(categories[d["category"]]) if int(d["index"]) < base.ROUND else None for d in docs]


def build(tmp: Path) -> base.Case:
    docs, responses = base.mmbench_docs(QUESTIONS, 1)
    docs = [{**d, "question": f"第{int(d['index']) % base.ROUND}题：图中是什么？"} for d in docs]
    base.write_parquet(tmp / "src/cn/dev-00000-of-00001.parquet", [{**d, "image": base.image_cell()} for d in docs])
    root = base.prepare("mmbench_cn", tmp / "src", tmp / "root")
    lines = [{"question_id": d["index"], "text": r} for d, r in zip(docs, responses)]
    return base.Case("mmbench_cn", "mmbench_cn", "mmbench/mmbench_cn_dev.yaml", docs, responses,
                     [str(d["index"]) for d in docs], root, base.write_answers(tmp / "answers.jsonl", lines),
                     {"circular": ("gpt_eval_score", 1.0)}, cn_scores,
                     {"env": base.NO_JUDGE, "no_retry_waits": True})  # fmt: skip


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> tuple[base.Case, dict[str, Any], dict[str, Any], Any]:
    case = build(tmp_path_factory.mktemp("mmbench_cn"))
    python = ensure_venv(log=lambda line: print(line, file=sys.stderr))
    (ref,) = lmms_references([case.spec()], python)
    assert "error" not in ref, ref.get("error")
    ours, records = base.run_ours(case, tmp_path_factory.mktemp("mmbench_cn-out"))
    return case, ours, ref, records


def test_headline_matches_lmms_eval(outcome: Any) -> None:
    _, ours, ref, _ = outcome
    assert ours["scores"]["circular"] == pytest.approx(ref["metrics"]["gpt_eval_score"], abs=base.TOL)


def test_per_question_results_match_lmms_eval(outcome: Any) -> None:
    case, _, ref, records = outcome
    problems = list(base.sample_mismatches(case, ref, records))
    assert not problems, "\n".join(problems)


def test_prompt_equals_doc_to_text(tmp_path: Path, outcome: Any) -> None:
    case = outcome[0]
    python = ensure_venv(log=lambda line: print(line, file=sys.stderr))
    script = (
        "import json, sys, yaml, pathlib, lmms_eval\n"
        "from lmms_eval.tasks.mmbench.cn_utils import mmbench_doc_to_text\n"
        "cfg = pathlib.Path(lmms_eval.__file__).parent / 'tasks/mmbench/_default_template_mmbench_cn_yaml'\n"
        "kw = yaml.safe_load(''.join(l for l in cfg.open() if '!function' not in l))\n"
        "kw = kw['lmms_eval_specific_kwargs']['default']\n"
        "docs = json.load(open(sys.argv[1]))\n"
        "print(json.dumps([mmbench_doc_to_text(d, kw) for d in docs], ensure_ascii=False))\n"
    )
    spec = tmp_path / "docs.json"
    spec.write_text(json.dumps(case.docs, ensure_ascii=False), encoding="utf-8")
    proc = subprocess.run([str(python), "-c", script, str(spec)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "OPENAI_API_KEY": "no-judge"})  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = dict(zip([str(d["index"]) for d in case.docs], json.loads(proc.stdout.strip().splitlines()[-1])))
    task = MMBenchCNTask()
    settings = load_protocol("lmms-eval").settings_for(task)
    got = {s.id: task.build_request(s, settings).prompt.removeprefix("<image>\n") for s in task.load(case.root)}
    assert got == expected
