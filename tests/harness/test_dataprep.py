"""``harness data prepare``: official layouts built from parquet files in the lmms-lab schemas.

The parquet files are made here, small, in each copy's schema (images as the ``datasets`` Image
struct ``{"bytes", "path"}``); the CLI prepares a root from them as from a downloaded snapshot, and
the task's own loader and scorer read the result. Nothing here touches the network.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from harness.data.readers import read_jsonl
from harness.types import Response
from tasks.gqa import GQATask
from tasks.gqa.prepare import official_question
from tasks.mme import MMETask
from tasks.mme.prepare import llava_text
from tests.helpers.paths import REALDATA

SUFFIX = "\nAnswer the question using a single word or phrase."
YN = " Please answer yes or no."


def harness(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], capture_output=True, text=True, timeout=300, env=full_env
    )


def encoded(fmt: str, color: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), color).save(buffer, format=fmt)
    return buffer.getvalue()


def image_struct(data: bytes, name: str) -> dict[str, Any]:
    """A value of the ``datasets`` Image feature as stored in parquet."""
    return {"bytes": data, "path": name}


def write_parquet(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def prepare(task: str, source: Path, root: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return harness("data", "prepare", task, "--source", str(source), "--data-root", str(root), "--no-progress", *extra)


def sources(root: Path, task: str) -> dict[str, Any]:
    return json.loads((root / "harness_sources" / f"{task}.json").read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------
# GQA


def gqa_rows() -> list[dict[str, Any]]:
    """Three testdev-balanced questions in lmms-lab/GQA's testdev_balanced_instructions schema."""

    def row(qid: str, image: str, question: str, answer: str, structural: str, semantic: str, group: str | None,
            program: list[tuple[str, list[int], str]], annotations: dict[str, dict[str, str]]) -> dict[str, Any]:
        return {
            "id": qid,
            "imageId": image,
            "question": question,
            "answer": answer,
            "fullAnswer": f"The answer is {answer}.",
            "isBalanced": True,
            "groups": {"global": group, "local": f"10-{qid}"},
            "entailed": [qid + "1"],
            "equivalent": [qid],
            "types": {"structural": structural, "semantic": semantic, "detailed": semantic + structural},
            "annotations": annotations,
            "semantic": [{"operation": op, "dependencies": deps, "argument": arg} for op, deps, arg in program],
            "semanticStr": " ".join(op for op, _, _ in program),
        }

    return [
        row("201", "n1", "Is the sky blue?", "no", "verify", "attr", None,
            [("select", [], "sky (1)"), ("verify color", [0], "blue")],
            {"answer": {}, "question": {"2": "1"}, "fullAnswer": {"1": "1"}}),
        row("202", "n1", "What color is the shirt?", "white", "query", "attr", "color",
            [("select", [], "shirt (2)"), ("query", [0], "color")],
            {"answer": {"0": "2"}, "question": {"4": "2"}, "fullAnswer": {}}),
        row("203", "n2", "Which kind of clothing is it?", "t-shirt", "query", "cat", "clothing",
            [("select", [], "clothing (5)"), ("query", [0], "name")],
            {"answer": {}, "question": {}, "fullAnswer": {"3": "5"}}),
    ]


def gqa_images() -> list[dict[str, Any]]:
    return [
        {"id": "n1", "image": image_struct(encoded("JPEG", (10, 20, 30)), "n1.jpg")},
        {"id": "n2", "image": image_struct(encoded("JPEG", (90, 80, 70)), "n2.jpg")},
    ]


def write_gqa_snapshot(source: Path, rows: list[dict[str, Any]] | None = None) -> Path:
    write_parquet(source / "testdev_balanced_instructions/testdev-00000-of-00001.parquet", rows or gqa_rows())
    write_parquet(source / "testdev_balanced_images/testdev-00000-of-00001.parquet", gqa_images())
    return source


def test_gqa_prepare_builds_the_official_layout(tmp_path: Path) -> None:
    source, root = write_gqa_snapshot(tmp_path / "snap"), tmp_path / "root"
    proc = prepare("gqa", source, root)
    assert proc.returncode == 0, proc.stderr
    assert "prepared gqa" in proc.stdout and "3 samples" in proc.stdout

    questions = json.loads((root / "gqa/data/testdev_balanced_questions.json").read_text())
    assert list(questions) == ["201", "202", "203"]
    first = questions["201"]
    assert list(first) == [
        "semantic", "entailed", "equivalent", "question", "imageId", "isBalanced", "groups", "answer",
        "semanticStr", "annotations", "types", "fullAnswer",
    ]
    assert first["annotations"] == {"answer": {}, "question": {"2": "1"}, "fullAnswer": {"1": "1"}}
    assert first["semantic"][1] == {"operation": "verify color", "dependencies": [0], "argument": "blue"}
    assert first["groups"] == {"global": None, "local": "10-201"}

    llava = read_jsonl(root / "gqa/llava_gqa_testdev_balanced.jsonl")
    assert llava[0] == {"question_id": "201", "image": "n1.jpg", "text": "Is the sky blue?" + SUFFIX,
                        "category": "default"}
    assert (root / "gqa/data/images/n2.jpg").read_bytes() == gqa_images()[1]["image"]["bytes"]

    task = GQATask()
    samples = task.load(root)
    assert [s.id for s in samples] == ["201", "202", "203"]
    assert samples[0].images[0].open().size == (4, 4)
    assert samples[2].metadata["structural"] == "query" and samples[0].metadata["steps"] == 2
    answers = {"201": Response(text="No!"), "202": Response(text="White."), "203": Response(text="T-shirt")}
    official = task.score(samples, answers)
    assert official.metrics["accuracy"].value == pytest.approx(200 / 3)
    assert official.metrics["open"].value == pytest.approx(100.0)

    record = sources(root, "gqa")
    assert record["repo"] == "lmms-lab/GQA"
    assert record["revision"] == "local" and record["commit"] == "local"
    assert record["samples"] == 3 and record["missing"] == []
    names = [f["name"] for f in record["files"]]
    assert names == [
        "testdev_balanced_images/testdev-00000-of-00001.parquet",
        "testdev_balanced_instructions/testdev-00000-of-00001.parquet",
    ]
    for entry in record["files"]:
        assert entry["sha256"] == sha256(source / entry["name"])
    assert record["limitations"] == ["gqa: 3 questions; the official testdev-balanced file has 12578"]


def test_gqa_json_text_columns_decode_to_the_same_questions(tmp_path: Path) -> None:
    rows = gqa_rows()
    as_text = []
    for row in rows:
        encoded_row = dict(row)
        for name in ("semantic", "types", "groups", "annotations", "entailed", "equivalent"):
            encoded_row[name] = json.dumps(row[name])
        as_text.append(encoded_row)
    root_a, root_b = tmp_path / "a", tmp_path / "b"
    assert prepare("gqa", write_gqa_snapshot(tmp_path / "sa", rows), root_a).returncode == 0
    assert prepare("gqa", write_gqa_snapshot(tmp_path / "sb", as_text), root_b).returncode == 0
    path = "gqa/data/testdev_balanced_questions.json"
    assert (root_a / path).read_bytes() == (root_b / path).read_bytes()


def test_gqa_missing_columns_are_filled_and_recorded(tmp_path: Path) -> None:
    keep = ("id", "imageId", "question", "answer", "isBalanced")
    rows = [{k: v for k, v in row.items() if k in keep} for row in gqa_rows()]
    root = tmp_path / "root"
    proc = prepare("gqa", write_gqa_snapshot(tmp_path / "snap", rows), root)
    assert proc.returncode == 0, proc.stderr
    question = json.loads((root / "gqa/data/testdev_balanced_questions.json").read_text())["203"]
    assert question["types"] == {"structural": "unknown", "semantic": "unknown", "detailed": "unknown"}
    assert question["semantic"] == []
    limitations = sources(root, "gqa")["limitations"]
    assert any("no 'types' column" in line for line in limitations)
    assert any("no 'semantic' column" in line for line in limitations)
    assert "note: gqa: the copy has no 'types' column" in proc.stdout
    samples = GQATask().load(root)
    result = GQATask().score(samples, {"203": Response(text="t-shirt")})
    assert result.metrics["accuracy"].value == pytest.approx(100 / 3)


def test_gqa_without_answers_is_an_error_naming_the_file(tmp_path: Path) -> None:
    rows = [{k: v for k, v in row.items() if k != "answer"} for row in gqa_rows()]
    proc = prepare("gqa", write_gqa_snapshot(tmp_path / "snap", rows), tmp_path / "root")
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1
    assert "testdev-00000-of-00001.parquet: missing column(s) answer" in proc.stderr


def test_missing_parquet_files_name_what_was_expected(tmp_path: Path) -> None:
    source = tmp_path / "snap"
    write_parquet(source / "testdev_balanced_images/testdev-00000-of-00001.parquet", gqa_images())
    proc = prepare("gqa", source, tmp_path / "root")
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1
    assert "nothing matches testdev_balanced_instructions/testdev-*.parquet" in proc.stderr
    assert not (tmp_path / "root" / "harness_sources").exists()


def test_hub_cache_folder_keeps_its_commit(tmp_path: Path) -> None:
    commit = "0123456789abcdef0123456789abcdef01234567"
    source = write_gqa_snapshot(tmp_path / "hub/datasets--lmms-lab--GQA/snapshots" / commit)
    root = tmp_path / "root"
    assert prepare("gqa", source, root).returncode == 0
    record = sources(root, "gqa")
    assert record["commit"] == commit and record["revision"] == "local"


def test_hub_unreachable_is_one_line(tmp_path: Path) -> None:
    env = {"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    proc = harness("data", "prepare", "gqa", "--source", "hf", "--data-root", str(tmp_path / "root"), env=env)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1
    assert "cannot download lmms-lab/GQA@main from the Hugging Face hub" in proc.stderr
    assert "--source DIR" in proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("data", "prepare", "gqa", "--data-root", "X"), "needs --source"),
        (("data", "gqa", "--source", "hf"), "--source only apply to 'data prepare TASK'"),
        (("data", "prepare"), "usage: data prepare TASK"),
        (("data", "gqa", "mme"), "one task name"),
        (("data", "prepare", "nosuchtask", "--source", "hf", "--data-root", "X"), "nosuchtask"),
    ],
)
def test_data_command_usage_errors(args: tuple[str, ...], message: str) -> None:
    proc = harness(*args)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr


def test_revision_applies_to_the_hub_only(tmp_path: Path) -> None:
    proc = prepare("gqa", write_gqa_snapshot(tmp_path / "snap"), tmp_path / "root", "--revision", "v1")
    assert proc.returncode == 2 and "--revision applies to --source hf only" in proc.stderr


def test_data_check_still_works_after_prepare(tmp_path: Path) -> None:
    root = tmp_path / "root"
    assert prepare("gqa", write_gqa_snapshot(tmp_path / "snap"), root).returncode == 0
    proc = harness("data", "gqa", "--data-root", str(root))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 samples" in proc.stdout


def test_official_question_keeps_python_literal_lists() -> None:
    row = {**gqa_rows()[0], "entailed": "['2011', '2012']"}
    out = official_question(row, set(row), "row 0")
    assert out["entailed"] == ["2011", "2012"]


# ---------------------------------------------------------------------------------------------
# MME


def mme_rows() -> list[dict[str, Any]]:
    """Three subtasks in lmms-lab/MME's schema: flat jpg, nested (artwork) jpg, flat png (cognition)."""
    items = [
        ("existence", "0001.jpg", "Is there a dog in this image?", "Yes"),
        ("existence", "0001.jpg", "Is there a cat in this image?", "No"),
        ("existence", "0002.jpg", "Is there a car in this image?", "Yes"),
        ("existence", "0002.jpg", "Is there a bus in this image?", "No"),
        ("artwork", "10002.jpg", "Does this artwork exist in the form of painting?", "Yes"),
        ("artwork", "10002.jpg", "Does this artwork exist in the form of glassware?", "No"),
        ("artwork", "10049.jpg", "Is this artwork created by someone?", "Yes"),
        ("artwork", "10049.jpg", "Is this artwork created by nobody?", "No"),
        ("code_reasoning", "0020.png", "Is a python code shown in the picture?", "Yes"),
        ("code_reasoning", "0020.png", "Is a c++ code shown in the picture?", "No"),
        ("code_reasoning", "0014.png", "Is the output of the code '7'?", "Yes"),
        ("code_reasoning", "0014.png", "Is the output of the code '1'?", "No"),
    ]
    rows = []
    for i, (category, name, question, answer) in enumerate(items):
        suffix = "  Please answer yes or no." if i == 2 else YN  # the two-space variant of real color lines
        fmt = "PNG" if name.endswith(".png") else "JPEG"
        rows.append({
            "question_id": f"{category}/{name}",
            "image": image_struct(encoded(fmt, (i * 20, 0, 0)), name),
            "question": question + suffix,
            "answer": answer,
            "category": category,
        })
    return rows


def test_mme_prepare_builds_the_release_and_eval_tool_layout(tmp_path: Path) -> None:
    source, root = tmp_path / "snap", tmp_path / "root"
    rows = mme_rows()
    write_parquet(source / "data/test-00000-of-00002.parquet", rows[:6])
    write_parquet(source / "data/test-00001-of-00002.parquet", rows[6:])
    proc = prepare("mme", source, root)
    assert proc.returncode == 0, proc.stderr

    mme = root / "MME"
    assert (mme / "eval_tool/Your_Results/existence.txt").read_text().splitlines()[2] == (
        "0002.jpg\tIs there a car in this image?  Please answer yes or no.\tYes"
    )
    release = mme / "MME_Benchmark_release_version"
    assert (release / "artwork/images/10002.jpg").read_bytes() == rows[4]["image"]["bytes"]
    assert (release / "artwork/questions_answers_YN/10002.txt").read_text() == (
        "Does this artwork exist in the form of painting? Please answer yes or no.\tYes\n"
        "Does this artwork exist in the form of glassware? Please answer yes or no.\tNo\n"
    )
    assert (release / "code_reasoning/0014.png").is_file() and (release / "code_reasoning/0014.txt").is_file()
    llava = read_jsonl(mme / "llava_mme.jsonl")
    assert llava[2] == {"question_id": "existence/0002.jpg", "image": "existence/0002.jpg",
                        "text": "Is there a car in this image?" + SUFFIX, "category": "existence"}
    assert llava[4]["question_id"] == "artwork/images/10002.jpg"

    task = MMETask()
    samples = task.load(root)
    assert len(samples) == 12
    assert samples[2].metadata["eval_question"].endswith("  Please answer yes or no.")
    assert samples[4].images[0].open().size == (4, 4)
    truth = {s.id: Response(text=str(s.target)) for s in samples}
    result = task.score(samples, truth)
    assert result.metrics["perception"].value == pytest.approx(400.0)
    assert result.metrics["cognition"].value == pytest.approx(200.0)

    record = sources(root, "mme")
    assert record["repo"] == "lmms-lab/MME" and record["samples"] == 12
    assert [f["name"] for f in record["files"]] == [
        "data/test-00000-of-00002.parquet",
        "data/test-00001-of-00002.parquet",
    ]
    assert any("12 questions" in line for line in record["limitations"])


def test_mme_duplicated_rows_are_an_error(tmp_path: Path) -> None:
    source = tmp_path / "snap"
    write_parquet(source / "data/test-00000-of-00002.parquet", mme_rows())
    write_parquet(source / "data/test-00001-of-00002.parquet", mme_rows()[:2])
    proc = prepare("mme", source, tmp_path / "root")
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert "test-00001-of-00002.parquet row 0: duplicate question" in proc.stderr


def test_mme_unknown_category_is_an_error(tmp_path: Path) -> None:
    rows = mme_rows()
    rows[0] = {**rows[0], "category": "dogs", "question_id": "dogs/0001.jpg"}
    write_parquet(tmp_path / "snap/data/test-00000-of-00001.parquet", rows)
    proc = prepare("mme", tmp_path / "snap", tmp_path / "root")
    assert proc.returncode == 1 and "category 'dogs' is not an MME subtask" in proc.stderr


def _real_mme_rows(gt_dir: Path) -> list[dict[str, Any]]:
    """lmms-lab/MME-schema rows made from the official eval_tool ground truth (images: tiny stand-ins)."""
    jpeg, png = encoded("JPEG"), encoded("PNG")
    rows = []
    for path in sorted(gt_dir.glob("*.txt")):
        for line in path.read_text(encoding="utf-8").splitlines():
            name, question, answer = line.split("\t")
            data = png if name.endswith(".png") else jpeg
            rows.append({"question_id": f"{path.stem}/{name}", "image": image_struct(data, name),
                         "question": question, "answer": answer, "category": path.stem})
    return rows


def test_mme_prepared_from_real_ground_truth_reproduces_llava_files_and_score(tmp_path: Path) -> None:
    real = REALDATA / "mme"
    if not (real / "eval_tool/Your_Results").is_dir():
        pytest.skip(f"real MME data not found: {real} (set HARNESS_REALDATA)")
    source, root = tmp_path / "snap", tmp_path / "root"
    write_parquet(source / "data/test-00000-of-00001.parquet", _real_mme_rows(real / "eval_tool/Your_Results"))
    proc = prepare("mme", source, root)
    assert proc.returncode == 0, proc.stderr
    for path in (real / "eval_tool/Your_Results").glob("*.txt"):
        assert (root / "MME/eval_tool/Your_Results" / path.name).read_bytes() == path.read_bytes()
    # LLaVA's own question file, made independently, has exactly the records derived here.
    made = Counter(json.dumps(r, sort_keys=True) for r in read_jsonl(root / "MME/llava_mme.jsonl"))
    theirs = Counter(json.dumps(r, sort_keys=True) for r in read_jsonl(real / "llava_mme.jsonl"))
    assert made == theirs
    assert sources(root, "mme")["limitations"] == []

    score = harness("score", "mme", "--data-root", str(root), "--answers",
                    str(real / "answers/llava-v1.5-13b.jsonl"), "--json")
    assert score.returncode == 0, score.stderr
    scores = json.loads(score.stdout)["scores"]
    assert scores["perception"] == pytest.approx(1531.3187, abs=1e-3)
    assert scores["cognition"] == pytest.approx(295.3571, abs=1e-3)


def test_llava_text_replaces_either_suffix_spacing() -> None:
    assert llava_text("Is it red? Please answer yes or no.") == "Is it red?" + SUFFIX
    assert llava_text("Is it red?  Please answer yes or no.") == "Is it red?" + SUFFIX
    assert llava_text("Is it red?") == "Is it red?" + SUFFIX


# ---------------------------------------------------------------------------------------------
# TextVQA


def textvqa_rows() -> list[dict[str, Any]]:
    """Three val questions in lmms-lab/textvqa's schema (two on one image; one image without OCR tokens)."""

    def row(qid: int, image_id: str, question: str, answers: list[str], tokens: list[str]) -> dict[str, Any]:
        return {
            "image_id": image_id,
            "question_id": qid,
            "question": question,
            "question_tokens": question.rstrip("?").split(),
            "image": image_struct(encoded("JPEG", (qid % 250, 9, 9)), f"{image_id}.jpg"),
            "image_width": 4,
            "image_height": 4,
            "flickr_original_url": f"https://example.org/{image_id}_o.jpg",
            "flickr_300k_url": f"https://example.org/{image_id}_z.jpg",
            "answers": answers,
            "image_classes": ["Poster"],
            "set_name": "val",
            "ocr_tokens": tokens,
        }

    return [
        row(34602, "003a8ae2ef43b901", "what is the brand of this camera?", ["dakota"] * 10, ["DAKOTA", "DIGITAL"]),
        row(34603, "003a8ae2ef43b901", "what does the small white text spell?", ["copenhagen"] * 9 + ["d"],
            ["DAKOTA", "DIGITAL"]),
        row(34604, "97b1112b17015396", "whats the lowest number yard line that you can see?", ["10"] * 10, []),
    ]


def test_textvqa_prepare_builds_the_official_layout(tmp_path: Path) -> None:
    from tasks.textvqa import TextVQATask

    source, root = tmp_path / "snap", tmp_path / "root"
    rows = textvqa_rows()
    write_parquet(source / "data/validation-00000-of-00001.parquet", rows)
    proc = prepare("textvqa", source, root)
    assert proc.returncode == 0, proc.stderr

    ann = json.loads((root / "textvqa/TextVQA_0.5.1_val.json").read_text())
    assert {k: ann[k] for k in ("dataset_type", "dataset_name", "dataset_version")} == {
        "dataset_type": "val", "dataset_name": "textvqa", "dataset_version": "0.5.1"}
    assert list(ann["data"][0]) == [
        "question", "image_id", "image_classes", "flickr_original_url", "flickr_300k_url", "image_width",
        "image_height", "answers", "question_tokens", "question_id", "set_name",
    ]
    llava = read_jsonl(root / "textvqa/llava_textvqa_val_v051_ocr.jsonl")
    assert llava[0] == {
        "question_id": "003a8ae2ef43b901",
        "image": "003a8ae2ef43b901.jpg",
        "text": "What is the brand of this camera?\nReference OCR token: DAKOTA, DIGITAL" + SUFFIX,
        "category": "default",
    }
    assert llava[2]["text"] == "Whats the lowest number yard line that you can see?\nReference OCR token: " + SUFFIX
    assert sorted(p.name for p in (root / "textvqa/train_images").iterdir()) == [
        "003a8ae2ef43b901.jpg", "97b1112b17015396.jpg"]

    task = TextVQATask()
    samples = task.load(root)
    assert [s.id for s in samples] == ["003a8ae2ef43b901#0", "003a8ae2ef43b901#1", "97b1112b17015396#0"]
    answers = {samples[0].id: Response(text="Dakota"), samples[1].id: Response(text="d"),
               samples[2].id: Response(text="10")}
    result = task.score(samples, answers)
    assert result.metrics["accuracy"].value == pytest.approx(100 * (1 + 0.3 + 1) / 3)
    assert sources(root, "textvqa")["limitations"] == ["textvqa: 3 questions; the official val file has 5000"]


def test_textvqa_without_ocr_tokens_cannot_be_prepared(tmp_path: Path) -> None:
    rows = [{k: v for k, v in row.items() if k != "ocr_tokens"} for row in textvqa_rows()]
    write_parquet(tmp_path / "snap/data/validation-00000-of-00001.parquet", rows)
    proc = prepare("textvqa", tmp_path / "snap", tmp_path / "root")
    assert proc.returncode == 1 and "missing column(s) ocr_tokens" in proc.stderr


# ---------------------------------------------------------------------------------------------
# VQA-v2


def vqav2_rows(split: str) -> list[dict[str, Any]]:
    """Rows in lmms-lab/VQAv2's schema; test splits have no annotations (nulls)."""
    labelled = split == "validation"
    base = 262148 if labelled else 262144

    def row(k: int, question: str, answers: list[str], image: int = base) -> dict[str, Any]:
        return {
            "question_type": "is the" if labelled else None,
            "multiple_choice_answer": answers[0] if labelled else None,
            "answers": [{"answer": a, "answer_confidence": "yes", "answer_id": i + 1} for i, a in enumerate(answers)]
            if labelled else None,
            "image_id": image,
            "answer_type": "yes/no" if labelled else None,
            "question_id": image * 1000 + k,
            "question": question,
            "image": image_struct(encoded("JPEG", (k * 40, 0, 0)), f"{image}.jpg"),
        }

    rows = [row(0, "Is the ball flying towards the batter?", ["yes"] * 10),
            row(1, "What sport is this?", ["baseball"] * 9 + ["softball"])]
    if split == "test":
        rows.append(row(0, "Is it day?", ["yes"] * 10, image=base + 1))
    return rows


def test_vqav2_val_prepare_and_score(tmp_path: Path) -> None:
    from tasks.vqav2 import VQAv2ValTask

    source, root = tmp_path / "snap", tmp_path / "root"
    write_parquet(source / "data/validation-00000-of-00001.parquet", vqav2_rows("validation"))
    proc = prepare("vqav2_val", source, root)
    assert proc.returncode == 0, proc.stderr
    questions = json.loads((root / "vqav2/v2_OpenEnded_mscoco_val2014_questions.json").read_text())
    assert questions["questions"][1] == {"image_id": 262148, "question": "What sport is this?",
                                         "question_id": 262148001}
    assert questions["data_subtype"] == "val2014" and questions["task_type"] == "Open-Ended"
    annotations = json.loads((root / "vqav2/v2_mscoco_val2014_annotations.json").read_text())
    assert list(annotations["annotations"][0]) == [
        "question_type", "multiple_choice_answer", "answers", "image_id", "answer_type", "question_id"]
    assert (root / "vqav2/val2014/COCO_val2014_000000262148.jpg").is_file()

    task = VQAv2ValTask()
    samples = task.load(root)
    result = task.score(samples, {samples[0].id: Response(text="Yes"), samples[1].id: Response(text="softball")})
    assert result.metrics["overall"].value == pytest.approx(100 * (1 + 0.3) / 2)
    limitations = sources(root, "vqav2_val")["limitations"]
    assert any("'info' and 'license'" in line for line in limitations)
    assert not (root / "vqav2/llava_vqav2_mscoco_test-dev2015.jsonl").exists()


def test_vqav2_test_dev_prepare_and_export(tmp_path: Path) -> None:
    from tasks.vqav2 import VQAv2Task

    source, root = tmp_path / "snap", tmp_path / "root"
    write_parquet(source / "data/testdev-00000-of-00001.parquet", vqav2_rows("testdev"))
    write_parquet(source / "data/test-00000-of-00001.parquet", vqav2_rows("test"))
    proc = prepare("vqav2", source, root)
    assert proc.returncode == 0, proc.stderr
    dev = read_jsonl(root / "vqav2/llava_vqav2_mscoco_test-dev2015.jsonl")
    assert dev[0] == {"question_id": 262144000, "image": "COCO_test2015_000000262144.jpg",
                      "text": "Is the ball flying towards the batter?" + SUFFIX, "category": "default"}
    assert len(read_jsonl(root / "vqav2/llava_vqav2_mscoco_test2015.jsonl")) == 3
    assert sorted(p.name for p in (root / "vqav2/test2015").iterdir()) == ["COCO_test2015_000000262144.jpg"]
    samples = VQAv2Task().load(root)
    assert [s.id for s in samples] == ["262144000", "262144001"]

    answers = tmp_path / "answers.jsonl"
    answers.write_text(json.dumps({"question_id": 262144001, "text": "Baseball"}) + "\n", encoding="utf-8")
    out = tmp_path / "submission.json"
    proc = harness("export", "vqav2", "--answers", str(answers), "--data-root", str(root), "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    submission = {r["question_id"]: r["answer"] for r in json.loads(out.read_text())}
    assert submission == {262144000: "", 262144001: "baseball", 262145000: ""}


# ---------------------------------------------------------------------------------------------
# ScienceQA


def scienceqa_rows() -> list[dict[str, Any]]:
    """Three test problems in lmms-lab/ScienceQA's ScienceQA-FULL schema (one without an image)."""

    def row(question: str, choices: list[str], answer: int, hint: str, image: bytes | None) -> dict[str, Any]:
        return {
            "image": image_struct(image, "image.png") if image else None,
            "question": question, "choices": choices, "answer": answer, "hint": hint,
            "task": "closed choice", "grade": "grade4", "subject": "social science", "topic": "geography",
            "category": "Geography", "skill": "Identify oceans and continents", "lecture": "", "solution": "",
        }

    return [
        row("Which figure of speech is used in this text?\nSing, O goddess", ["chiasmus", "apostrophe"], 1, "",
            None),
        row("What is the name of the colony shown?", ["Maryland", "Vermont", "Ohio"], 0, "", encoded("PNG")),
        row("Which of these organisms contains matter that was once part of the lichen?",
            ["bilberry", "mushroom"], 1, "Below is a food web.\nA food web models how matter moves.",
            encoded("PNG", (0, 90, 0))),
    ]


def test_scienceqa_prepare_and_score(tmp_path: Path) -> None:
    from tasks.scienceqa import ScienceQATask

    source, root = tmp_path / "snap", tmp_path / "root"
    write_parquet(source / "ScienceQA-FULL/test-00000-of-00001.parquet", scienceqa_rows())
    proc = prepare("scienceqa", source, root)
    assert proc.returncode == 0, proc.stderr
    entries = json.loads((root / "scienceqa/llava_test_CQM-A.json").read_text())
    assert entries[0] == {"id": "hf-test-0000", "conversations": [
        {"from": "human", "value": "Which figure of speech is used in this text?\nSing, O goddess\n"
                                   "A. chiasmus\nB. apostrophe"},
        {"from": "gpt", "value": "B"}]}
    assert entries[2]["image"] == "hf-test-0002/image.png"
    assert entries[2]["conversations"][0]["value"].startswith(
        "<image>\nContext: Below is a food web.\nA food web models how matter moves.\nWhich of these")
    problems = json.loads((root / "scienceqa/problems.json").read_text())
    assert problems["hf-test-0001"]["image"] == "image.png" and problems["hf-test-0000"]["image"] is None
    assert json.loads((root / "scienceqa/pid_splits.json").read_text()) == {"test": list(problems)}
    assert (root / "scienceqa/images/test/hf-test-0002/image.png").read_bytes() == scienceqa_rows()[2]["image"]["bytes"]

    task = ScienceQATask()
    samples = task.load(root)
    result = task.score(samples, {"hf-test-0000": Response(text="A"), "hf-test-0001": Response(text="A"),
                                  "hf-test-0002": Response(text="A")})
    assert result.metrics["img_accuracy"].value == pytest.approx(50.0)
    assert any("no problem ids" in line for line in sources(root, "scienceqa")["limitations"])


# ---------------------------------------------------------------------------------------------
# MMBench


def mmbench_rows(index_as_text: bool = False, l2_name: str = "l2-category") -> list[dict[str, Any]]:
    """Two questions with their circular passes, in lmms-lab/MMBench_EN's schema."""
    image = encoded("JPEG", (1, 2, 3))

    def row(index: int, question: str, options: list[str], answer: str, hint: str | None) -> dict[str, Any]:
        cells = dict(zip("ABCD", [*options, None, None, None, None][:4]))
        return {
            "index": str(index) if index_as_text else index, "question": question, "hint": hint, **cells,
            "answer": answer, "category": "image_scene", "image": image_struct(image, None),
            "source": "MMBench", l2_name: "coarse_perception", "comment": None, "split": "dev",
        }

    question = 'What is "shown"\nin the picture?'
    return [
        row(0, question, ["a cat", "a dog"], "A", None),
        row(1, "Which\tcolor?", ["red", "green", "blue"], "C", "Look at the sky."),
        row(1000000, question, ["a dog", "a cat"], "B", None),
        row(1000001, "Which\tcolor?", ["blue", "red", "green"], "A", "Look at the sky."),
        row(2000001, "Which\tcolor?", ["green", "blue", "red"], "B", "Look at the sky."),
    ]


def test_mmbench_prepare_writes_the_legacy_tsv(tmp_path: Path) -> None:
    from tasks.mmbench import MMBenchTask

    source, root = tmp_path / "snap", tmp_path / "root"
    write_parquet(source / "data/dev-00000-of-00001-75b6649fb044d38b.parquet", mmbench_rows())
    proc = prepare("mmbench", source, root)
    assert proc.returncode == 0, proc.stderr
    text = (root / "mmbench/mmbench_dev_20230712.tsv").read_text(encoding="utf-8")
    assert text.splitlines()[0] == "\t".join(
        ["index", "question", "hint", "A", "B", "C", "D", "answer", "category", "image", "source", "l2-category",
         "comment", "split"])
    record = sources(root, "mmbench")
    assert record["repo"] == "lmms-lab/MMBench_EN"
    assert any("5 rows / 2 questions" in line for line in record["limitations"])

    task = MMBenchTask()
    samples = task.load(root)
    assert [s.id for s in samples] == ["0", "1", "1000000", "1000001", "2000001"]
    assert samples[0].images[0].open().size == (4, 4)
    letters = {"0": "A", "1": "C", "1000000": "B", "1000001": "A", "2000001": "B"}
    result = task.score(samples, {sid: Response(text=letter) for sid, letter in letters.items()})
    assert result.metrics["circular"].value == pytest.approx(100.0)
    wrong = {**letters, "2000001": "C"}
    result = task.score(samples, {sid: Response(text=letter) for sid, letter in wrong.items()})
    assert result.metrics["circular"].value == pytest.approx(50.0)


def test_mmbench_other_question_sets_go_to_the_vlmevalkit_name(tmp_path: Path) -> None:
    from tasks.mmbench import MMBenchTask

    source, root = tmp_path / "snap", tmp_path / "root"
    write_parquet(source / "en/dev-00000-of-00001.parquet", mmbench_rows(index_as_text=True, l2_name="L2-category"))
    proc = prepare("mmbench", source, root, "--repo", "lmms-lab/MMBench")
    assert proc.returncode == 0, proc.stderr
    assert not (root / "mmbench/mmbench_dev_20230712.tsv").exists()
    text = (root / "mmbench/MMBench_DEV_EN.tsv").read_text(encoding="utf-8")
    assert "\tcoarse_perception\t" in text
    assert len(MMBenchTask().load(root)) == 5
    record = sources(root, "mmbench")
    assert record["samples"] == 5
    assert any("not the 20230712 set" in line for line in record["limitations"])


# ---------------------------------------------------------------------------------------------
# --source hf, with the hub client replaced (tests never reach the network)


def test_hub_source_downloads_only_the_task_files_at_the_resolved_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub

    from harness.data.prepare import prepare_task

    commit = "fedcba9876543210fedcba9876543210fedcba98"
    snapshot = write_gqa_snapshot(tmp_path / "cache/snapshots" / commit)
    calls: dict[str, Any] = {}

    class Info:
        sha, id = commit, "lmms-lab-encoder/GQA"

    def dataset_info(self: Any, repo_id: str, revision: str | None = None, **_: Any) -> Info:
        calls["info"] = (repo_id, revision)
        return Info()

    def snapshot_download(**kwargs: Any) -> str:
        calls["download"] = kwargs
        return str(snapshot)

    monkeypatch.setattr(huggingface_hub.HfApi, "dataset_info", dataset_info)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    root = tmp_path / "root"
    report = prepare_task(GQATask(), "hf", root, show_progress=False)
    assert calls["info"] == ("lmms-lab/GQA", "main")
    assert calls["download"] == {
        "repo_id": "lmms-lab-encoder/GQA",
        "repo_type": "dataset",
        "revision": commit,
        "allow_patterns": [
            "testdev_balanced_instructions/testdev-*.parquet",
            "testdev_balanced_images/testdev-*.parquet",
        ],
    }
    record = sources(root, "gqa")
    assert report.sources_file == root / "harness_sources/gqa.json" and report.n_samples == 3
    assert (record["repo"], record["resolved_repo"], record["revision"], record["commit"], record["source"]) == (
        "lmms-lab/GQA", "lmms-lab-encoder/GQA", "main", commit, "hf")


def test_hub_revision_is_passed_and_recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    from harness.data.prepare import prepare_task
    from tasks.mme.prepare import HF_PATTERNS

    commit = "0" * 40
    snapshot = tmp_path / "snap"
    write_parquet(snapshot / "data/test-00000-of-00001.parquet", mme_rows())

    class Info:
        sha, id = commit, "lmms-lab/MME"

    seen: list[Any] = []
    monkeypatch.setattr(huggingface_hub.HfApi, "dataset_info",
                        lambda self, repo_id, revision=None, **_: seen.append(revision) or Info())
    monkeypatch.setattr(huggingface_hub, "snapshot_download",
                        lambda **kw: seen.append(kw["allow_patterns"]) or str(snapshot))
    prepare_task(MMETask(), "hf", tmp_path / "root", revision="v1.0", show_progress=False)
    assert seen == ["v1.0", list(HF_PATTERNS["mme"])]
    record = sources(tmp_path / "root", "mme")
    assert (record["revision"], record["commit"], record["resolved_repo"]) == ("v1.0", commit, None)


def test_a_failed_prepare_leaves_no_stale_sources_record(tmp_path: Path) -> None:
    source, root = write_gqa_snapshot(tmp_path / "snap"), tmp_path / "root"
    assert prepare("gqa", source, root).returncode == 0
    assert (root / "harness_sources/gqa.json").is_file()
    (source / "testdev_balanced_instructions/testdev-00000-of-00001.parquet").unlink()
    assert prepare("gqa", source, root).returncode == 1
    assert not (root / "harness_sources/gqa.json").exists()


def test_mmbench_prepared_from_real_rows_reproduces_the_llava_score(tmp_path: Path) -> None:
    """LLaVA-1.5-13B's dev upload (4377 rows, answers included) as MMBench_EN rows -> 796/1176 circular."""
    import csv

    upload = REALDATA / "mmbench/answers_upload/mmbench_dev_20230712/llava-v1.5-13b.xlsx.derived.csv"
    answers = REALDATA / "mmbench/answers/mmbench_dev_20230712/llava-v1.5-13b.jsonl"
    if not upload.is_file() or not answers.is_file():
        pytest.skip(f"real MMBench data not found: {upload} (set HARNESS_REALDATA)")
    image = image_struct(encoded("JPEG"), None)
    rows = []
    with upload.open(encoding="utf-8", newline="") as handle:
        for cells in csv.DictReader(handle):
            row: dict[str, Any] = {k: (v if v != "" else None) for k, v in cells.items() if k != "prediction"}
            rows.append({**row, "index": int(row["index"]), "hint": None, "category": None, "image": image,
                         "source": None, "l2-category": None, "comment": None})
    source, root = tmp_path / "snap", tmp_path / "root"
    write_parquet(source / "data/dev-00000-of-00001.parquet", rows)
    proc = prepare("mmbench", source, root)
    assert proc.returncode == 0, proc.stderr
    assert sources(root, "mmbench")["limitations"] == []  # 4377 rows, 1176 questions: the 20230712 set
    score = harness("score", "mmbench", "--data-root", str(root), "--answers", str(answers), "--json")
    assert score.returncode == 0, score.stderr
    assert json.loads(score.stdout)["scores"]["circular"] == pytest.approx(100 * 796 / 1176)


class _NoCopyTask(GQATask):
    """A task without a Hugging Face copy (the Task contract's defaults)."""

    name = "nocopy"
    hf_dataset = None

    def prepare(self, source: Path, root: Path) -> None:
        super(GQATask, self).prepare(source, root)


def test_a_task_without_a_copy_is_a_one_line_error(tmp_path: Path) -> None:
    from harness.data.prepare import prepare_task
    from harness.errors import HarnessError, UsageError

    with pytest.raises(UsageError, match="task nocopy has no Hugging Face dataset"):
        prepare_task(_NoCopyTask(), "hf", tmp_path / "root", show_progress=False)
    with pytest.raises(HarnessError, match="task nocopy cannot be prepared from a Hugging Face copy"):
        prepare_task(_NoCopyTask(), str(write_gqa_snapshot(tmp_path / "snap")), tmp_path / "root",
                     show_progress=False)
