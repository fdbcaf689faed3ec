"""A large answers file is parsed by a forked child while the samples load (``harness/run/answer_columns.py``):
the same columns, the same scores and notes, and the same errors as reading it in line.

The child is only forked by a process with no other thread, which a pytest worker that ran other modules
may not be: the read-ahead is tried in fresh processes here.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness.data.readers import iter_jsonl
from harness.errors import DataError
from harness.registry import get_task
from harness.run import answer_columns
from harness.run.answer_columns import READ_AHEAD_BYTES, llava_columns
from harness.run.score_answers import ScoreOptions, read_answers, result_json, score_answers
from tests.helpers.paths import REPO

# In a fresh process: whether a child was forked, and the columns it sent (null: none).
PROBE = """
import json, sys
from pathlib import Path
from harness.run.answer_columns import read_ahead
with read_ahead(Path(sys.argv[1])) as ahead:
    got = ahead.columns()
    columns = None if got is None else [got.first, got.question_ids, got.texts, got.bad, got.lines]
print(json.dumps([ahead.forked, columns]))
"""
# ``harness score`` in a fresh process, saying on stderr's last line how many children read ahead.
COUNTED_SCORE = """
import sys
from harness.run import answer_columns
forked = []
class Counted(answer_columns._Child):
    def __init__(self, pid, fd):
        super().__init__(pid, fd)
        forked.append(self.forked)
answer_columns._Child = Counted
from harness.cli import main
code = main(sys.argv[1:])
print(f"forked {sum(forked)}", file=sys.stderr)
sys.exit(code)
"""


def _python(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300, cwd=REPO)


def _probe(path: Path) -> list[Any]:
    proc = _python(PROBE, str(path))
    assert proc.returncode == 0, proc.stderr
    return list(json.loads(proc.stdout))  # [forked, columns]


def _gqa_answers(root: Path, path: Path, min_bytes: int = READ_AHEAD_BYTES + 4096) -> None:
    """Answers to every demo GQA question (some wrong, one a number, one a list), then lines that replace an
    earlier answer (not the two odd ones) or answer no question, until the file holds ``min_bytes``."""
    rng = random.Random(3)
    questions = json.loads((root / "gqa/data/testdev_balanced_questions.json").read_text())
    lines = []
    for qid, q in questions.items():
        text: object = q["answer"] if rng.random() < 0.7 else rng.choice(["zebra", "Yes.", " no "])
        lines.append({"question_id": qid, "prompt": q["question"], "text": text, "model_id": "big-model"})
    lines[3]["text"], lines[5]["text"] = 7, ["a"]
    ids = list(questions)
    size = sum(len(json.dumps(line)) + 1 for line in lines)
    while size < min_bytes:
        extra = {"question_id": rng.choice([*ids[6:], f"unknown-{len(lines)}"]), "prompt": "p" * 60, "text": "yes"}
        lines.append(extra)
        size += len(json.dumps(extra)) + 1
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


@pytest.fixture(scope="module")
def gqa_root() -> Path:
    from harness.data.demo import ensure_demo_root

    return ensure_demo_root([get_task("gqa")])


def test_the_child_sends_the_columns_read_in_line(gqa_root: Path, tmp_path: Path) -> None:
    path = tmp_path / "answers.jsonl"
    _gqa_answers(gqa_root, path)
    forked, got = _probe(path)
    expected = llava_columns(path, list(iter_jsonl(path)))
    assert forked and got == [expected.first, expected.question_ids, expected.texts, expected.bad, None]
    assert len(expected.bad) == 2 and len(expected.texts) > 5000
    small = tmp_path / "small.jsonl"
    small.write_text("".join(f'{{"question_id": {i}, "text": "yes"}}\n' for i in range(100)))
    assert _probe(small) == [False, None]  # under READ_AHEAD_BYTES: read in line, no child


def test_a_large_file_scores_as_it_does_read_in_line(
    gqa_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "answers.jsonl"
    _gqa_answers(gqa_root, path)
    proc = _python(COUNTED_SCORE, "score", "gqa", "--answers", str(path), "--data-root", str(gqa_root), "--json")
    assert proc.returncode == 0 and proc.stderr.splitlines()[-1] == "forked 1", proc.stderr
    monkeypatch.setattr(answer_columns, "READ_AHEAD_BYTES", path.stat().st_size + 1)
    in_line = score_answers(ScoreOptions("gqa", str(path), str(gqa_root)))
    assert json.loads(proc.stdout) == json.loads(json.dumps(result_json(in_line.result)))
    notes = " ".join(in_line.result.notes)
    assert "duplicate answer line(s); the later line was used" in notes and "match no question" in notes
    assert in_line.result.n_errors == 2 and in_line.model_label == "big-model"


def test_a_line_at_fault_is_named_as_it_is_read_in_line(gqa_root: Path, tmp_path: Path) -> None:
    path = tmp_path / "answers.jsonl"
    _gqa_answers(gqa_root, path)
    lines = path.read_text().splitlines(keepends=True)
    lines[2000] = json.dumps({"question_id": "x", "prompt": "no text"}) + "\n"
    path.write_text("".join(lines))
    assert _probe(path) == [True, None]  # the child sends nothing; the file is read again in line
    with pytest.raises(DataError, match=r"answers\.jsonl:2001: missing field 'text'"):
        read_answers(path, get_task("gqa"), get_task("gqa").load_for_scoring(gqa_root))
