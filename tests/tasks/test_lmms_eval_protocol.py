"""The lmms-eval protocol of GQA and MME: its prompts, limits and scoring against the official ones.

Each test scores the same answers both ways, so the differences the protocol documents are pinned:
GQA "No!" is right under lmms-eval and wrong officially; MME "Y" is yes under lmms-eval and other
in the eval tool.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.errors import DataError, UsageError
from harness.protocol import load_protocol
from harness.types import Response
from tasks.common.yesno import parse_yes_no
from tasks.gqa import GQATask
from tasks.gqa.scorer import lmms_eval_normalize
from tasks.mme import MMETask, lmms_eval_prompt
from tasks.mme.scorer import parse_lmms_eval

SUFFIX = "\nAnswer the question using a single word or phrase."
YN = " Please answer yes or no."


def harness(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, timeout=300)


# ---------------------------------------------------------------------------------------------
# GQA


def _gqa_question(answer: str, image: str, structural: str = "verify", text: str = "Is it red?") -> dict[str, Any]:
    return {
        "question": text,
        "imageId": image,
        "answer": answer,
        "fullAnswer": answer,
        "isBalanced": True,
        "types": {"structural": structural, "semantic": "attr", "detailed": "x"},
        "semantic": [{"operation": "select", "argument": "x", "dependencies": []}],
        "groups": {"global": None, "local": "l"},
    }


GQA_CASES = [  # (gold answer, prediction, official correct, lmms-eval correct)
    ("no", "No!", False, True),
    ("yes", " yes", False, True),
    ("yes", "yes\n", False, True),
    ("t-shirt", "tshirt", False, True),
    ("t-shirt", "T-Shirt", True, True),
    ("yes", "Yes.", True, True),
    ("yes", "yes .", False, False),
    ("left", "the left", False, False),
    ("no", "", False, False),
    ("yes", "yes\x00", False, True),  # numpy string arrays (lmms-eval's exact_match) drop trailing NULs
]


def _gqa_root(tmp_path: Path) -> Path:
    questions = {str(i): _gqa_question(gold, f"n{i}") for i, (gold, *_rest) in enumerate(GQA_CASES)}
    (tmp_path / "gqa/data").mkdir(parents=True)
    (tmp_path / "gqa/data/testdev_balanced_questions.json").write_text(json.dumps(questions), encoding="utf-8")
    lines = [json.dumps({"question_id": qid, "image": f"{q['imageId']}.jpg", "text": q["question"] + SUFFIX})
             for qid, q in questions.items()]
    (tmp_path / "gqa/llava_gqa_testdev_balanced.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return tmp_path


def test_gqa_same_answers_score_differently(tmp_path: Path) -> None:
    task = GQATask()
    samples = task.load(_gqa_root(tmp_path))
    responses = {str(i): Response(text=pred) for i, (_, pred, *_r) in enumerate(GQA_CASES)}
    settings = load_protocol("lmms-eval").settings_for(task)
    official = task.score(samples, responses)
    lmms = task.score(samples, responses, settings)
    assert [s.correct for s in official.samples] == [case[2] for case in GQA_CASES]
    assert [s.correct for s in lmms.samples] == [case[3] for case in GQA_CASES]
    n = len(GQA_CASES)
    assert official.metrics["accuracy"].value == pytest.approx(100 * sum(c[2] for c in GQA_CASES) / n)
    assert lmms.metrics["accuracy"].value == pytest.approx(100 * sum(c[3] for c in GQA_CASES) / n)
    assert set(lmms.metrics) == {"accuracy"} and lmms.breakdowns == {}
    assert {"binary", "open", "distribution"} <= set(official.metrics)
    assert lmms.samples[0].parsed == "no" and lmms.samples[3].detail["normalized_answer"] == "tshirt"
    assert any("lmms-eval" in line for line in lmms.notes)


def test_gqa_llava15_settings_keep_the_official_scorer(tmp_path: Path) -> None:
    task = GQATask()
    samples = task.load(_gqa_root(tmp_path))
    responses = {"0": Response(text="No!")}
    llava = task.score(samples, responses, load_protocol("llava15").settings_for(task))
    assert llava.model_dump() == task.score(samples, responses).model_dump()


def test_gqa_lmms_eval_request_is_question_plus_post_prompt(tmp_path: Path) -> None:
    task = GQATask()
    sample = task.load(_gqa_root(tmp_path))[0]
    lmms = task.build_request(sample, load_protocol("lmms-eval").settings_for(task))
    llava = task.build_request(sample, load_protocol("llava15").settings_for(task))
    assert lmms.prompt == "<image>\nIs it red?" + SUFFIX == llava.prompt
    assert (lmms.generation.max_new_tokens, llava.generation.max_new_tokens) == (16, 128)
    custom = task.build_request(sample, {"prompt": "lmms-eval", "pre_prompt": "Q: ", "post_prompt": " Answer:"})
    assert custom.prompt == "<image>\nQ: Is it red? Answer:"


def test_gqa_unknown_setting_value_is_a_usage_error(tmp_path: Path) -> None:
    task = GQATask()
    samples = task.load(_gqa_root(tmp_path))
    with pytest.raises(UsageError, match="scorer='vqa'"):
        task.score(samples, {}, {"scorer": "vqa"})


def test_lmms_eval_normalize_deletes_ascii_punctuation_only() -> None:
    assert lmms_eval_normalize("Yes!") == "yes"
    assert lmms_eval_normalize("T-Shirt's") == "tshirts"
    assert lmms_eval_normalize("café…") == "café…"  # non-ASCII punctuation stays


# ---------------------------------------------------------------------------------------------
# MME


@pytest.mark.parametrize(
    ("answer", "lmms", "official"),
    [
        ("Y", "yes", "other"),
        ("N", "no", "other"),
        ("n.", "no", "other"),
        ("  Yes", "yes", "other"),
        ("Yes.", "yes", "yes"),
        ("No", "no", "no"),
        ("x", "other", "other"),
        ("Not sure", "no", "no"),
        ("The answer is yes", "other", "other"),
        ("", "other", "other"),
    ],
)
def test_mme_parsers_differ(answer: str, lmms: str, official: str) -> None:
    assert parse_lmms_eval(answer) == lmms
    assert parse_yes_no(answer) == official


MME_ITEMS = [  # (subtask, image, question, gt, answer)
    ("existence", "a.jpg", "Is there a dog?", "Yes", "Y"),
    ("existence", "a.jpg", "Is there a cat?", "No", "No"),
    ("existence", "b.jpg", "Is there a car?", "Yes", "Yes"),
    ("existence", "b.jpg", "Is there a bus?", "No", "N"),
    ("code_reasoning", "c.png", "Is it python?", "Yes", "Yes"),
    ("code_reasoning", "c.png", "Is it c++?", "No", "Yes"),
]


def _mme_root(root: Path, items: list[tuple[str, str, str, str, str]], spaces: str = " ") -> Path:
    gt_dir = root / "MME/eval_tool/Your_Results"
    gt_dir.mkdir(parents=True)
    gt: dict[str, list[str]] = {}
    lines = []
    for subtask, image, question, answer, _ in items:
        gt.setdefault(subtask, []).append(f"{image}\t{question}{spaces}Please answer yes or no.\t{answer}\n")
        qid = f"{subtask}/{image}"
        lines.append(json.dumps({"question_id": qid, "image": qid, "text": question + SUFFIX, "category": subtask}))
    for subtask, rows in gt.items():
        (gt_dir / f"{subtask}.txt").write_text("".join(rows), encoding="utf-8")
    (root / "MME/llava_mme.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def test_mme_same_answers_score_differently(tmp_path: Path) -> None:
    task = MMETask()
    samples = task.load(_mme_root(tmp_path, MME_ITEMS))
    responses = {s.id: Response(text=item[4]) for s, item in zip(samples, MME_ITEMS)}
    official = task.score(samples, responses)
    lmms = task.score(samples, responses, load_protocol("lmms-eval").settings_for(task))
    # Official: "Y" and "N" are "other" -> existence acc 2/4, acc+ 0/2 -> 50. lmms-eval: all right -> 200.
    assert official.metrics["perception"].value == pytest.approx(50.0)
    assert lmms.metrics["perception"].value == pytest.approx(200.0)
    # code_reasoning: one right of two, no image fully right -> 50 in both.
    assert official.metrics["cognition"].value == pytest.approx(50.0)
    assert lmms.metrics["cognition"].value == pytest.approx(50.0)
    assert set(lmms.metrics) == {"perception", "cognition"}
    assert lmms.breakdowns["subtask"]["existence"].value == pytest.approx(200.0)
    assert official.n_parse_failures == 2 and lmms.n_parse_failures == 0
    assert [s.parsed for s in lmms.samples[:4]] == ["yes", "no", "yes", "no"]


def test_mme_aggregations_agree_when_the_labels_agree(tmp_path: Path) -> None:
    items = [(*item[:4], "Yes") for item in MME_ITEMS]
    task = MMETask()
    samples = task.load(_mme_root(tmp_path, items))
    responses = {s.id: Response(text="Yes") for s in samples}
    official = task.score(samples, responses)
    lmms = task.score(samples, responses, load_protocol("lmms-eval").settings_for(task))
    for group in ("perception", "cognition"):
        assert lmms.metrics[group].value == pytest.approx(official.metrics[group].value)


def test_mme_lmms_eval_needs_two_answers_per_image(tmp_path: Path) -> None:
    task = MMETask()
    samples = task.load(_mme_root(tmp_path, MME_ITEMS))
    with pytest.raises(DataError, match=r"image existence/a\.jpg has 1 answers"):
        task.score(samples[1:], {}, {"scorer": "lmms-eval"})


def test_mme_lmms_eval_prompt_keeps_the_space_of_the_two_space_variant(tmp_path: Path) -> None:
    task = MMETask()
    samples = task.load(_mme_root(tmp_path, MME_ITEMS[:2], spaces="  "))
    lmms = task.build_request(samples[0], load_protocol("lmms-eval").settings_for(task))
    llava = task.build_request(samples[0], load_protocol("llava15").settings_for(task))
    assert llava.prompt == "<image>\nIs there a dog?" + SUFFIX
    assert lmms.prompt == "<image>\nIs there a dog? " + SUFFIX
    assert (lmms.generation.max_new_tokens, llava.generation.max_new_tokens) == (16, 128)


def test_mme_lmms_eval_prompt_matches_the_llava_text_for_the_usual_suffix(tmp_path: Path) -> None:
    task = MMETask()
    samples = task.load(_mme_root(tmp_path, MME_ITEMS[:2]))
    lmms = task.build_request(samples[0], load_protocol("lmms-eval").settings_for(task))
    assert lmms.prompt == "<image>\n" + samples[0].question
    assert lmms_eval_prompt(" Is it? Please answer yes or no.\n", "", " Answer:") == "Is it? Answer:"
    assert lmms_eval_prompt("Is it? Please answer yes or no.", "", "") == "Is it? Please answer yes or no."


def test_score_cli_applies_the_lmms_eval_protocol(tmp_path: Path) -> None:
    root = _mme_root(tmp_path / "root", MME_ITEMS)
    answers = tmp_path / "answers.jsonl"
    lines = [json.dumps({"question_id": f"{s}/{i}", "prompt": q + SUFFIX, "text": a}) for s, i, q, _, a in MME_ITEMS]
    answers.write_text("\n".join(lines) + "\n", encoding="utf-8")
    results = {}
    for protocol in ("llava15", "lmms-eval"):
        proc = harness("score", "mme", "--data-root", str(root), "--answers", str(answers), "--json",
                       "--protocol", protocol)
        assert proc.returncode == 0, proc.stderr
        results[protocol] = json.loads(proc.stdout)["scores"]
    assert results["llava15"]["perception"] == pytest.approx(50.0)
    assert results["lmms-eval"]["perception"] == pytest.approx(200.0)


# ---------------------------------------------------------------------------------------------
# Reasoning tags: lmms-eval's command line cleans every answer before scoring


TAG_CASES = [
    "</think> no",
    "<think>a</think> yes ",
    "<think> yes",
    "x</think>y</think>z",
    "<analysis>q</analysis>B",
    "<think>a</think><think>b</think> c",
    "</think>a<think>b",
    "  Yes.\n",
    "<THINK>a</THINK> no",
    "</analysis>x</think>y",
    "",
]


def test_strip_reasoning_equals_lmms_eval_own_function() -> None:
    """Our cleaning against lmms_eval.api.reasoning.strip_reasoning_tags run in lmms-eval's venv, with the
    tags of the lmms-eval protocol file (its command line's default)."""
    from bench.lmms_eval_env import ensure_venv
    from harness.task import strip_reasoning

    tags = load_protocol("lmms-eval").defaults["reasoning_tags"]
    script = (
        "import json, sys\n"
        "from lmms_eval.api.reasoning import strip_reasoning_tags\n"
        "tags, cases = json.load(sys.stdin)\n"
        "print(json.dumps([strip_reasoning_tags(c, tags) for c in cases]))\n"
    )
    python = ensure_venv(log=lambda line: print(line, file=sys.stderr))
    done = subprocess.run(
        [str(python), "-c", script], input=json.dumps([tags, TAG_CASES]), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert [strip_reasoning(c, tags) for c in TAG_CASES] == json.loads(done.stdout)


def test_reasoning_tags_change_the_lmms_eval_score_only(tmp_path: Path) -> None:
    """``</think> no`` is "no" under lmms-eval (scored right), and unparsed under the official eval tool."""
    task = GQATask()
    samples = task.load(_gqa_root(tmp_path))[:1]  # gold "no"
    answer = {samples[0].id: Response(text="<think>It is not red.</think>\n No")}
    lmms = task.score(samples, answer, load_protocol("lmms-eval").settings_for(task))
    official = task.score(samples, answer, load_protocol("llava15").settings_for(task))
    assert lmms.samples[0].correct is True and official.samples[0].correct is False
    untagged = {**load_protocol("lmms-eval").settings_for(task), "reasoning_tags": []}
    assert task.score(samples, answer, untagged).samples[0].correct is False
