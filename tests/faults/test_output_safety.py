"""Hostile text in what the CLI prints and writes: rich markup, terminal escapes, spreadsheet formulas.

Each case runs the real CLI in a subprocess on the demo data:

- markup (``[/]``, ``[bold]``) in the output dir, model path and data root of ``harness run`` and the
  output dir of ``harness score`` is printed as itself (no MarkupError, nothing swallowed);
- answers holding ESC c (terminal reset), an OSC title sequence, a C1 CSI and BEL reach ``compare``,
  ``gate`` and ``report`` shown as visible escapes, with no raw control character in stdout, stderr or
  the written files (``compare --format json`` keeps the exact text, escaped);
- answers starting with ``= + - @`` (also after a tab or CR) land in the MMBench submission xlsx as
  text cells flagged quote-prefixed, with the value unchanged and the answer letters intact.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.paths import REPO

# What a terminal may act on: C0 controls but tab and newline, DEL, C1 controls.
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@dataclass
class Proc:
    """A finished CLI call, its output decoded as bytes-exact UTF-8 (no newline translation)."""

    rc: int
    stdout: str
    stderr: str


def harness(*args: str | Path, cwd: Path | None = None) -> Proc:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")}
    env["COLUMNS"] = "2000"  # rich wraps at the terminal width; long temporary paths must stay on one line
    proc = subprocess.run([sys.executable, "-m", "harness", *map(str, args)], capture_output=True, timeout=600,
                          cwd=cwd or REPO, env=env)  # fmt: skip
    return Proc(proc.returncode, proc.stdout.decode("utf-8"), proc.stderr.decode("utf-8"))


def assert_clean(proc: Proc, *files: Path) -> None:
    """No traceback, and no raw control character in stdout, stderr or ``files``."""
    assert "Traceback" not in proc.stderr, proc.stderr
    for name, text in (("stdout", proc.stdout), ("stderr", proc.stderr)):
        assert not RAW_CONTROL.findall(text), f"raw control characters in {name}: {RAW_CONTROL.findall(text)}"
    for path in files:
        text = path.read_bytes().decode("utf-8")
        assert not RAW_CONTROL.findall(text), f"raw control characters in {path.name}: {RAW_CONTROL.findall(text)}"


@pytest.fixture(scope="module")
def demo_root() -> Path:
    from harness.data.demo import ensure_demo_root
    from harness.registry import get_tasks

    return ensure_demo_root(get_tasks("gqa,mmbench"))


# ---------------------------------------------------------------------------------------------------------------
# markup in paths and names

MODEL_DIR = "mo[/]del[bold]x"  # "[/]" holds a slash: a folder "mo[" with a subfolder "]del[bold]x"
DATA_DIR = "da[/]ta[red]y"
OUT_DIR = "ou[/]t[bold]z"


@pytest.fixture(scope="module")
def markup_run(tmp_path_factory: pytest.TempPathFactory, demo_root: Path) -> tuple[Proc, Path]:
    from model_adapters.demo_model import ensure_demo_checkpoint

    base = tmp_path_factory.mktemp("markup")
    shutil.copytree(ensure_demo_checkpoint(), base / MODEL_DIR)
    shutil.copytree(demo_root, base / DATA_DIR)
    proc = harness("run", "--tasks", "gqa", "--limit", "2", "--model", f"tinyllava:{MODEL_DIR}",
                   "--data-root", DATA_DIR, "--output-dir", OUT_DIR, "--no-progress", cwd=base)  # fmt: skip
    return proc, base


@pytest.fixture(scope="module")
def markup_score(tmp_path_factory: pytest.TempPathFactory, demo_root: Path) -> Proc:
    base = tmp_path_factory.mktemp("markup-score")
    answers = base / "answers.jsonl"
    answers.write_text(json.dumps({"question_id": "200000000", "text": "yes"}) + "\n", encoding="utf-8")
    return harness("score", "gqa", "--data-root", demo_root, "--answers", answers, "--output-dir", OUT_DIR, cwd=base)


@pytest.mark.parametrize(("where", "expected"), [
    ("run output dir", f"results: {OUT_DIR}/"),
    ("run model name", f"]del[bold]x (tinyllava:{MODEL_DIR};"),
    ("run data root", f"{DATA_DIR}"),
    ("score output dir", f"saved: {OUT_DIR}/"),
])  # fmt: skip
def test_markup_in_paths_and_names_prints_literally(
    where: str, expected: str, markup_run: tuple[Proc, Path], markup_score: Proc
) -> None:
    if where.startswith("run"):
        proc, base = markup_run
        output = proc.stderr  # the run's console is stderr
        if where == "run data root":
            expected = f"DEMO DATA {(base / DATA_DIR).resolve()}"
    else:
        proc = markup_score
        output = proc.stderr  # the table goes to stdout, the saved path to stderr
    assert proc.rc == 0, proc.stderr
    assert_clean(proc)
    assert expected in output, output


# ---------------------------------------------------------------------------------------------------------------
# terminal escapes in answers: compare, gate, report

# kind -> (the answer, what must be visible instead). Each answer holds a word found nowhere else.
ESCAPES = {  # (markdown may escape the backslashes and brackets once more)
    "ESC c": ("\x1bcresetword", r"\\+x1bcresetword"),
    "OSC title": ("\x1b]0;titleword\x07", r"\\+x1b\\*\]0;titleword\\+x07"),
    "C1 CSI": ("\x9b31mcsiword", r"\\+x9b31mcsiword"),
    "BEL": ("bellword\x07", r"bellword\\+x07"),
    "DEL": ("delword\x7f", r"delword\\+x7f"),
}
COMMANDS = ("compare", "gate", "report")


@pytest.fixture(scope="module")
def hostile_outputs(tmp_path_factory: pytest.TempPathFactory, demo_root: Path) -> dict[str, tuple[Proc, list[Path]]]:
    """Run A answers its questions right, run B answers the same ones with the hostile texts."""
    base = tmp_path_factory.mktemp("escapes")
    questions = json.loads((demo_root / "gqa/data/testdev_balanced_questions.json").read_text(encoding="utf-8"))
    ids = sorted(questions)[: len(ESCAPES)]
    runs = {}
    for label, texts in (("A", [questions[i]["answer"] for i in ids]), ("B", [a for a, _ in ESCAPES.values()])):
        answers = base / f"{label}.jsonl"
        answers.write_text("".join(json.dumps({"question_id": i, "text": t}) + "\n" for i, t in zip(ids, texts)),
                           encoding="utf-8")  # fmt: skip
        out = base / label
        proc = harness("score", "gqa", "--data-root", demo_root, "--answers", answers, "--output-dir", out)
        assert proc.rc == 0, proc.stderr
        (runs[label],) = [p for p in out.iterdir() if (p / "results.json").is_file()]
    a, b = runs["A"], runs["B"]
    gate_md, junit, report = base / "gate.md", base / "junit.xml", base / "report"
    return {
        "compare": (harness("compare", a, b), []),
        "compare-json": (harness("compare", a, b, "--format", "json"), []),
        "gate": (harness("gate", "--baseline", a, "--candidate", b, "--markdown", gate_md, "--junit", junit),
                 [gate_md, junit]),
        "report": (harness("report", b, "--vs", a, "--output", report), [report / "report.md"]),
    }  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("kind", list(ESCAPES))
def test_terminal_escapes_in_answers_are_shown_not_sent(
    kind: str, command: str, hostile_outputs: dict[str, tuple[Proc, list[Path]]]
) -> None:
    proc, files = hostile_outputs[command]
    assert proc.rc in ((0, 1) if command == "gate" else (0,)), proc.stderr  # gate: 1 is a failed check
    raw, visible = ESCAPES[kind]
    texts = [proc.stdout, *(p.read_text(encoding="utf-8") for p in files)]
    assert not any(raw in text for text in texts)
    assert_clean(proc, *files)
    markdown = [t for t in texts if t.startswith("#")]  # compare, gate: stdout; gate.md; report.md (no answers in XML)
    assert len(markdown) == (2 if command == "gate" else 1)
    for text in markdown:
        assert re.search(visible, text), text
    if command == "gate":
        ET.parse(files[1])  # the JUnit file is XML 1.0, which cannot hold the raw characters


@pytest.mark.parametrize("kind", ["C1 CSI", "DEL"])  # JSON escapes C0 controls by itself, but not these
def test_compare_json_escapes_controls_and_keeps_the_text(
    kind: str, hostile_outputs: dict[str, tuple[Proc, list[Path]]]
) -> None:
    proc, _ = hostile_outputs["compare-json"]
    assert proc.rc == 0, proc.stderr
    raw, _ = ESCAPES[kind]
    assert raw not in proc.stdout
    assert_clean(proc)
    flips = [f for t in json.loads(proc.stdout)["tasks"] for f in t["flips"]]
    assert raw in [f["answer_b"] for f in flips]  # the exact answer, only written escaped


# ---------------------------------------------------------------------------------------------------------------
# formulas in the MMBench submission

FORMULAS = {
    "=": '=HYPERLINK("http://x","y")',
    "+": "+1+cmd|' /C calc'!A0",
    "-": "-2+3",
    "@": "@SUM(A1:A2)",
    "tab": "\t=1+1",
    "CR": "\r=1+1",
}


@pytest.fixture(scope="module")
def submission(tmp_path_factory: pytest.TempPathFactory, demo_root: Path) -> tuple[Proc, Path, dict[int, str]]:
    from tasks.mmbench.tsv import find_tsv, read_table

    base = tmp_path_factory.mktemp("export")
    indices = [row.index for row in read_table(find_tsv(demo_root)).rows][: len(FORMULAS)]
    by_index = dict(zip(indices, FORMULAS.values()))
    answers = base / "answers.jsonl"
    answers.write_text("".join(json.dumps({"question_id": i, "text": t}) + "\n" for i, t in by_index.items()),
                       encoding="utf-8")  # fmt: skip
    output = base / "submission.xlsx"
    proc = harness("export", "mmbench", "--data-root", demo_root, "--answers", answers, "--output", output)
    return proc, output, by_index


@pytest.mark.parametrize("prefix", list(FORMULAS))
def test_formula_like_answers_are_written_as_text(prefix: str, submission: tuple[Proc, Path, dict[int, str]]) -> None:
    from openpyxl import load_workbook

    proc, output, by_index = submission
    assert proc.rc == 0, proc.stderr
    assert_clean(proc)
    sheet = load_workbook(output).worksheets[0]
    header = [c.value for c in sheet[1]]
    rows = {row[0].value: dict(zip(header, row)) for row in sheet.iter_rows(min_row=2)}
    index = next(i for i, t in by_index.items() if t == FORMULAS[prefix])
    cell = rows[index]["prediction"]
    # text, unchanged (XML reads a CR as a newline, as before): what the evaluator reads
    assert cell.data_type == "s" and cell.value == FORMULAS[prefix].replace("\r", "\n")
    assert cell.quotePrefix  # and a spreadsheet keeps it text when the cell is edited
    answer = rows[index]["answer"]  # the ground-truth letters the evaluator compares with stay as they were
    assert answer.data_type == "s" and answer.value in ("A", "B", "C", "D") and not answer.quotePrefix
