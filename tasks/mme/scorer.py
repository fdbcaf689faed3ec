"""MME scoring: LLaVA's ``convert_answer_to_mme.py`` followed by the eval tool's ``calculation.py``.

calculation.py reads ``<subtask>.txt`` files of ``image<TAB>question<TAB>gt<TAB>prediction`` lines,
pairs consecutive lines as the two questions of one image, and per subtask reports
100 * (acc + acc+). Both entry points here feed such lines to one implementation of that calculation.

``score_samples_lmms_eval`` is lmms-eval's scoring of the same answers (``tasks/mme/utils.py``): its
parser lower-cases, strips and deletes every "." first, and reads a lone "y"/"n" as yes/no (so "Y",
"  Yes" and "n." get a label there and are "other" in the eval tool); it groups answers by question
id (the image), asserts two per image, scores each image 100 * mean + 100 * both-correct, averages
per subtask and sums the subtasks into perception and cognition (the only two metrics it reports).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness.errors import DataError
from harness.results.records import Record, detail, meta, scored
from harness.stats.analytic import make_metric, mean_stderr, sum_of_means_stderr
from harness.stats.bootstrap import ColumnSums, Estimand, Estimands, Totals, ratio
from harness.types import Metric, Response, Sample, SampleScore, TaskResult
from tasks.common.answers import Counts, answered_only, collect_answers
from tasks.common.scoring import Header, right_or_wrong, task_result
from tasks.common.yesno import YesNo, parse_yes_no, yes_no_in_head

PERCEPTION = (
    "existence",
    "count",
    "position",
    "color",
    "posters",
    "celebrity",
    "scene",
    "landmark",
    "artwork",
    "OCR",
)
_LINE_BREAKERS = re.compile(r"[\t\r\n]")
COGNITION = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")
GROUPS: dict[str, tuple[str, ...]] = {"perception": PERCEPTION, "cognition": COGNITION}
ALL_SUBTASKS = PERCEPTION + COGNITION


@dataclass
class ToolLine:
    """One line as calculation.py reads it: image, ground truth and the prediction's label."""

    sample_id: str
    image: str
    gt: str
    label: str

    @property
    def correct(self) -> bool:
        return self.label == self.gt.lower()


def parse_tool_line(line: str, sample_id: str) -> ToolLine:
    """Split one line into its 4 fields and label the prediction (the trailing newline stays in it).

    Raises ValueError when the line has not 4 fields or the ground truth is not yes/no (the tool
    fails on both).
    """
    fields = line.split("\t")
    if len(fields) != 4:
        raise ValueError(f"expected 4 tab-separated fields (image, question, gt, prediction), found {len(fields)}")
    image, _question, gt, prediction = fields
    if gt.lower() not in ("yes", "no"):
        raise ValueError(f"ground truth {gt!r} is not Yes or No")
    return ToolLine(sample_id, image, gt, parse_yes_no(prediction))


@dataclass
class SubtaskStats:
    """acc, acc+ and score of one subtask, with the per-item values their standard errors need."""

    acc: float
    acc_plus: float
    score: float
    n_questions: int
    n_pairs: int
    line_correct: list[float] = field(default_factory=list)
    line_pair: list[int] = field(default_factory=list)
    pair_both: list[float] = field(default_factory=list)
    pair_u: list[float] = field(default_factory=list)


def subtask_stats(lines: Sequence[ToolLine]) -> SubtaskStats:
    """calculation.py on one subtask: acc over the lines it read, acc+ over consecutive line pairs."""
    acc = sum(ln.correct for ln in lines) / len(lines) if lines else 0.0
    stats = SubtaskStats(acc=acc, acc_plus=0.0, score=0.0, n_questions=len(lines), n_pairs=0)
    for start in range(0, len(lines), 2):
        pair = lines[start : start + 2]
        n_correct = sum(ln.correct for ln in pair)
        stats.pair_both.append(1.0 if n_correct == 2 else 0.0)
        stats.pair_u.append(n_correct / 2 + stats.pair_both[-1])
        for ln in pair:
            stats.line_correct.append(1.0 if ln.correct else 0.0)
            stats.line_pair.append(start)
    stats.n_pairs = len(stats.pair_both)
    stats.acc_plus = sum(stats.pair_both) / stats.n_pairs if stats.n_pairs else 0.0
    stats.score = acc * 100 + stats.acc_plus * 100
    return stats


def _scaled(value: float, values: Sequence[float], clusters: Sequence[int] | None, n: int, desc: str) -> Metric:
    se = mean_stderr(values, clusters) if values else None
    return make_metric(value, None if se is None else 100 * se, n, desc)


def mark_pairs(lines_by_subtask: Mapping[str, Sequence[ToolLine]], samples: Sequence[SampleScore]) -> None:
    """Record in each sample's detail the pair calculation.py puts it in: subtask / image of the pair's first line."""
    by_id = {s.sample_id: s for s in samples}
    for sub, lines in lines_by_subtask.items():
        for start in range(0, len(lines), 2):
            key = f"{sub}/{lines[start].image}"
            for line in lines[start : start + 2]:
                if line.sample_id in by_id:
                    by_id[line.sample_id].detail["pair"] = key


def _check_pairs(lines: Sequence[ToolLine], where: str) -> None:
    if not lines:
        raise DataError(f"{where}: no lines; calculation.py cannot score an empty subtask")
    if len(lines) % 2:
        raise DataError(
            f"{where}: {len(lines)} lines, an odd number; calculation.py pairs consecutive lines "
            "(two questions per image) and asserts on an unpaired one"
        )


def build_result(
    lines_by_subtask: Mapping[str, Sequence[ToolLine]],
    samples: list[SampleScore],
    header: Header,
    counts: Counts | None = None,
    notes: list[str] | None = None,
) -> TaskResult:
    """Subtask scores, perception / cognition / total sums and breakdowns from the tool's lines.

    Without ``counts``, every sample was scored and none had an error or was missing."""
    mark_pairs(lines_by_subtask, samples)
    stats = {sub: subtask_stats(lines_by_subtask[sub]) for sub in ALL_SUBTASKS if sub in lines_by_subtask}
    by_subtask: dict[str, Metric] = {}
    acc: dict[str, Metric] = {}
    acc_plus: dict[str, Metric] = {}
    for sub, st in stats.items():
        by_subtask[sub] = _scaled(st.score, st.pair_u, None, st.n_pairs, "100 * (acc + acc+)")
        acc[sub] = _scaled(st.acc * 100, st.line_correct, st.line_pair, st.n_questions, "percent of questions")
        acc_plus[sub] = _scaled(st.acc_plus * 100, st.pair_both, None, st.n_pairs, "percent of images")
    notes = list(notes or [])
    metrics: dict[str, Metric] = {}
    for group, members in (*GROUPS.items(), ("total", ALL_SUBTASKS)):
        present = [sub for sub in members if sub in stats]
        value = 0
        for sub in present:
            value += stats[sub].score
        stderr = sum_of_means_stderr([by_subtask[sub].stderr for sub in present])
        n = sum(stats[sub].n_pairs for sub in present)
        metrics[group] = make_metric(float(value), stderr, n, f"sum of {len(present)} subtask scores")
        if not present and group != "total":
            notes.append(f"{group}: no subtask present; reported as 0")
    breakdowns = {"subtask": by_subtask, "acc": acc, "acc_plus": acc_plus}
    return task_result(header, metrics, samples, counts or Counts(len(samples)), notes, breakdowns)


def _sample_score(sample_id: str, line: ToolLine, gt: str, subtask: str) -> SampleScore:
    detail: dict[str, object] = {"gt": gt, "subtask": subtask}
    return right_or_wrong(sample_id, line.label, line.correct, detail, line.label == "other")


def one_line(text: str) -> str:
    """The eval tool's readme requires one-line predictions: tabs and line breaks become spaces.

    (LLaVA's converter writes answers unchanged; a multi-line answer would break calculation.py.)
    The label reads the first four characters, so a one-line answer keeps the label of its first line.
    """
    return _LINE_BREAKERS.sub(" ", text)


def converter_line(sample: Sample, text: str) -> str:
    """The eval-tool line LLaVA's converter writes for one answer."""
    meta = sample.metadata
    return "\t".join((meta["image_name"], meta["eval_question"], str(sample.target), one_line(text))) + "\n"


def score_samples(
    samples: Sequence[Sample], responses: Mapping[str, Response], header: Header
) -> TaskResult:
    """Write each answer as the converter does (per subtask, in sample order) and run the calculation.

    The converter writes only the answers it is given, so unanswered questions are left out (counted
    in ``n_missing``); the pairing of the lines that remain follows, as in the official pipeline.
    """
    samples, n_missing, notes = answered_only(samples, responses, "LLaVA's converter")
    lines_by_subtask: dict[str, list[ToolLine]] = {}
    per_sample: list[SampleScore] = []
    answers = collect_answers(samples, responses)
    n_joined = 0
    for sample, text in zip(samples, answers.texts):
        subtask = sample.metadata["category"]
        n_joined += one_line(text) != text
        line = parse_tool_line(converter_line(sample, text), sample.id)
        lines_by_subtask.setdefault(subtask, []).append(line)
        per_sample.append(_sample_score(sample.id, line, str(sample.target), subtask))
    for subtask, lines in lines_by_subtask.items():
        _check_pairs(lines, f"mme subtask {subtask} (answers written as LLaVA's converter does)")
    if n_joined:
        notes.append(f"{n_joined} answers had tabs or line breaks, replaced by spaces (eval_tool readme: one line)")
    return build_result(lines_by_subtask, per_sample, header, Counts(len(samples), answers.n_errors, n_missing), notes)


def _read_text_lines(path: Path) -> list[str]:
    try:
        with path.open(encoding="utf-8") as handle:
            return handle.readlines()
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text") from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from exc


# (subtask, image file stem, question as in the tool line) -> the dataset's sample id
SampleIds = Mapping[tuple[str, str, str], str]


def score_directory(
    path: Path, header: Header, sample_ids: SampleIds | None = None
) -> TaskResult:
    """Score an eval-tool results folder (``<subtask>.txt`` with 4 columns) as calculation.py does.

    Lines get the dataset's sample ids where ``sample_ids`` knows them (so runs scored from a folder pair
    with runs scored from answer files); other lines are ``<subtask>/<image>#<line number>``.
    """
    missing = [f"{sub}.txt" for sub in ALL_SUBTASKS if not (path / f"{sub}.txt").is_file()]
    if missing:
        raise DataError(f"{path}: missing MME eval-tool result files: {', '.join(missing)}")
    lines_by_subtask: dict[str, list[ToolLine]] = {}
    per_sample: list[SampleScore] = []
    for sub in ALL_SUBTASKS:
        file = path / f"{sub}.txt"
        lines: list[ToolLine] = []
        for lineno, raw in enumerate(_read_text_lines(file), start=1):
            try:
                fields = raw.split("\t")
                fallback = f"{sub}/{fields[0]}#{lineno}"
                key = (sub, fields[0].rsplit(".", 1)[0], fields[1] if len(fields) > 1 else "")
                known = (sample_ids or {}).get(key)
                line = parse_tool_line(raw, known or fallback)
            except ValueError as exc:
                raise DataError(f"{file}:{lineno}: {exc}") from exc
            lines.append(line)
            per_sample.append(_sample_score(line.sample_id, line, line.gt, sub))
        _check_pairs(lines, str(file))
        lines_by_subtask[sub] = lines
    return build_result(lines_by_subtask, per_sample, header)


# ---------------------------------------------------------------------------------------------
# lmms-eval


def parse_lmms_eval(answer: str) -> YesNo:
    """lmms-eval's ``parse_pred_ans`` (from Otter): on the lower-cased, stripped answer without any ".",
    exact yes/no; a single character: "y" yes, "n" no, else other; else yes/no in the first 4 characters."""
    text = answer.lower().strip().replace(".", "")
    if text in ("yes", "no"):
        return text  # type: ignore[return-value]
    if len(text) == 1:
        return {"y": "yes", "n": "no"}.get(text, "other")  # type: ignore[return-value]
    return yes_no_in_head(text)


def _image_scores(rows: Sequence[tuple[str, bool]], subtask: str) -> list[float]:
    """Per image (question id, in first-seen order): 100 * mean + 100 * both correct; two answers each."""
    by_image: dict[str, list[bool]] = {}
    for image, correct in rows:
        by_image.setdefault(image, []).append(correct)
    scores = []
    for image, marks in by_image.items():
        if len(marks) != 2:
            raise DataError(
                f"mme subtask {subtask}: image {image} has {len(marks)} answers; lmms-eval asserts two per image"
            )
        scores.append(100.0 * sum(marks) / 2 + (100.0 if all(marks) else 0.0))
    return scores


def score_samples_lmms_eval(
    samples: Sequence[Sample], responses: Mapping[str, Response], header: Header
) -> TaskResult:
    """lmms-eval's MME score: its parser, per-image pairs by question id, subtask means summed per group."""
    answers = collect_answers(samples, responses)
    rows: dict[str, list[tuple[str, bool]]] = {}
    per_sample: list[SampleScore] = []
    for sample, text in zip(samples, answers.texts):
        subtask, gt = sample.metadata["category"], str(sample.target)
        label = parse_lmms_eval(text)
        correct = label == gt.lower().strip().replace(".", "")
        rows.setdefault(subtask, []).append((sample.metadata["question_id"], correct))
        detail = {"gt": gt, "subtask": subtask, "pair": sample.metadata["question_id"]}
        per_sample.append(right_or_wrong(sample.id, label, correct, detail, label == "other"))
    by_subtask: dict[str, Metric] = {}
    for sub in ALL_SUBTASKS:
        if sub in rows:
            scores = _image_scores(rows[sub], sub)
            value = sum(scores) / len(scores)
            by_subtask[sub] = make_metric(value, mean_stderr(scores), len(scores), "mean over images of 100*(acc+both)")
    metrics: dict[str, Metric] = {}
    notes = ["lmms-eval scoring: its yes/no parser and per-image pairing; only perception and cognition are reported"]
    for group, members in GROUPS.items():
        present = [sub for sub in members if sub in by_subtask]
        if not present:
            notes.append(f"{group}: no subtask present; reported as 0")
        value = float(sum(by_subtask[sub].value for sub in present))
        stderr = sum_of_means_stderr([by_subtask[sub].stderr for sub in present])
        n = sum(by_subtask[sub].n for sub in present)
        metrics[group] = make_metric(value, stderr, n, f"sum of {len(present)} subtask scores (lmms-eval)")
    notes.extend(answers.missing_note(len(samples), "empty answers (other)"))
    return task_result(header, metrics, per_sample, answers.counts, notes, {"subtask": by_subtask})


# ---------------------------------------------------------------------------------------------
# Statistics


def _group_score(subtasks: Sequence[str]) -> Callable[[Totals], np.ndarray]:
    """Sum over subtasks of 100 * (acc + acc+) from the column totals."""

    def combine(t: Totals) -> np.ndarray:
        total = np.zeros_like(t[f"{subtasks[0]}:lines"])
        for sub in subtasks:
            acc = ratio(t[f"{sub}:correct"], t[f"{sub}:lines"])
            acc_plus = ratio(t[f"{sub}:both"], t[f"{sub}:pairs"])
            total = total + 100 * acc + 100 * acc_plus
        return total

    return combine


def estimands(records: Sequence[Record]) -> Estimands:
    """perception, cognition and total, recomputed as sums of subtask scores; image pairs are resampled
    within each subtask (a stratified bootstrap: every resample keeps each subtask's number of pairs)."""
    pairs: dict[str, list[float]] = {}
    subtask_of: dict[str, str] = {}
    for r in scored(records):
        sub = str(detail(r, "subtask", meta(r, "category", "")))
        key = f"{sub}|{detail(r, 'pair', meta(r, 'question_id', r['id']))}"
        pairs.setdefault(key, []).append(float(r["score"]))
        subtask_of[key] = sub
    sums = ColumnSums()
    for key, values in pairs.items():
        sub = subtask_of[key]
        sums.add(key, f"{sub}:correct", sum(values))
        sums.add(key, f"{sub}:lines", len(values))
        sums.add(key, f"{sub}:both", 1.0 if len(values) == 2 and all(v == 1.0 for v in values) else 0.0)
        sums.add(key, f"{sub}:pairs", 1.0)
    columns = sums.frozen()
    present = set(subtask_of.values())
    out: dict[str, Estimand] = {}
    for group, members in (*GROUPS.items(), ("total", ALL_SUBTASKS)):
        subs = [sub for sub in members if sub in present]
        if not subs:
            continue
        keys = {k for k, sub in subtask_of.items() if sub in subs}
        cols = {name: {k: v for k, v in col.items() if k in keys} for name, col in columns.items()
                if name.split(":")[0] in subs}  # fmt: skip
        out[group] = Estimand(group, _group_score(subs), cols, "image pair", "sum of subtask scores 100*(acc+acc+)")
    return Estimands(out, strata=subtask_of, stratum_name="subtask")
