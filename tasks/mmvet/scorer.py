"""MM-Vet grading: the official evaluator (yuweihao/MM-Vet ``mm-vet_evaluator.py``) and lmms-eval's variant.

Official grader, per item and run:

1. One user message: the instruction text (``mm-vet/mmvet_judge_prompt.txt``, used exactly as read, so its
   final newline gives the blank line before the query), a newline, then question, ground truth (each
   ``<AND>`` / ``<OR>`` padded with one space on both sides), prediction and an empty cell joined by " | "
   (so the message ends in "| ").
2. max_tokens 3, temperature 0. The score is ``float`` of the reply's first space-separated piece,
   accepted in [0, 1] (a NaN is refused here; Python's comparisons would let it through).
3. A refused reply is asked again with "\\nPredict the correctness of the answer (digit): " appended,
   first at the same temperature (0.0), the temperature rising by 0.5 after each retry; the reply of the
   fifth retry is not read and the score is 0.0 (six calls at 0, 0, 0.5, 1.0, 1.5, 2.0). Such a 0.0
   counts as a parse failure here.
4. The whole grading runs ``judge_runs`` times (default 1, the evaluator's default); run ``j`` is passed
   to the judge as ``run=j`` so each run is an independent call.

lmms-eval (``tasks/mmvet/utils.py``): the instruction's blank line before the table is dropped and the
header's first cell reads "gpt_query_prompt" (derived here from the same file), the query row ends in
" |", max_tokens 128. A reply whose first piece is no number raises the temperature by 0.5 and makes one
more call whose reply is never read; once the temperature reaches 2.0 the score is 0.0. A number out of
[0, 1] is asked again at the same temperature; lmms-eval has no limit, this code stops after
``LMMS_SAME_TEMPERATURE_LIMIT`` asks (score 0.0, counted as a parse failure). An empty reply is asked up
to 3 times (lmms-eval's ``patience``), then scores 0.0. Every call of an item's chain carries its index
as the judge's ``attempt``, so a caching judge asks each re-ask anew, as lmms-eval does.

A judge call that fails in transport (``JudgeReply.error``, after the judge's own retries) leaves the item
out of that run's means; it is counted and noted, never scored 0. Both graders keep every call's record.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from harness.errors import DataError
from harness.judging.contract import Judge, JudgeReply, judge_map
from harness.results.records import Record, detail, meta
from harness.stats.analytic import make_metric, mean_stderr
from harness.stats.bootstrap import ColumnSums, Estimand, Estimands
from harness.types import Metric, Response, Sample, SampleScore, TaskResult
from tasks.common.judged import JudgedScoring, judge_trail, needs_judge, percent_ratio_over_runs
from tasks.common.requests import setting_choice
from tasks.common.scoring import task_result

DIGIT_SUFFIX = "\nPredict the correctness of the answer (digit): "
MAX_RETRIES = 5
TEMPERATURE_STEP = 0.5
LMMS_MAX_TEMPERATURE = 2.0
LMMS_PATIENCE = 3
LMMS_SAME_TEMPERATURE_LIMIT = 10
OFFICIAL_HEADER = "\n\nQuestion | "
LMMS_HEADER = "\ngpt_query_prompt | "


def padded_answer(answer: str) -> str:
    """The ground truth as the grader shows it: ``<AND>`` and ``<OR>`` with a space on each side."""
    return answer.replace("<AND>", " <AND> ").replace("<OR>", " <OR> ")


def official_query(instruction: str, question: str, answer: str, prediction: str) -> str:
    """The official grader's user message (instruction, newline, the row ending in "| ")."""
    return instruction + "\n" + " | ".join([question, padded_answer(answer), prediction, ""])


def lmms_eval_instruction(instruction: str) -> str:
    """lmms-eval's copy of the instruction: no blank line before the table, header cell "gpt_query_prompt"."""
    return instruction.replace(OFFICIAL_HEADER, LMMS_HEADER, 1)


def lmms_eval_query(instruction: str, question: str, answer: str, prediction: str) -> str:
    """lmms-eval's user message: its instruction, newline, the row ending in " |"."""
    return f"{lmms_eval_instruction(instruction)}\n{question} | {padded_answer(answer)} | {prediction} |"


def first_piece(text: str) -> str:
    """What both graders read of a reply: the text before the first space, stripped."""
    return text.split(" ")[0].strip()


def read_score(text: str) -> float | None:
    """The score of a reply, or None when its first piece is not a number in [0, 1]."""
    try:
        value = float(first_piece(text))
    except ValueError:
        return None
    return value if 0.0 <= value <= 1.0 else None


@dataclass
class Grade:
    """One item graded in one run: the score (None: a call failed), the calls made, how it ended."""

    score: float | None = None
    content: str = ""  # what the official grade file keeps: the first piece read, or the last raw reply
    model: str = ""
    error: str | None = None
    exhausted: bool = False  # no readable score: 0.0 by the grader's rule
    calls: list[dict[str, Any]] = field(default_factory=list)


def _ask(
    judge: Judge, grade: Grade, content: str, temperature: float, max_tokens: int, run: int, asked: str
) -> JudgeReply:
    reply = judge.complete(
        [{"role": "user", "content": content}],
        temperature=temperature,
        max_tokens=max_tokens,
        run=run,
        attempt=len(grade.calls),  # each call of the chain is asked anew, never replayed from the cache
    )
    grade.calls.append({"asked": asked, "temperature": temperature, **reply.record()})
    if reply.model:
        grade.model = reply.model
    return reply


def _failed(grade: Grade, reply: JudgeReply) -> Grade:
    grade.error = reply.error or "judge call failed"
    grade.score = None
    return grade


def grade_official(judge: Judge, query: str, run: int, max_tokens: int = 3) -> Grade:
    """The official evaluator's chain for one item in one run."""
    grade = Grade()
    temperature = 0.0
    reply = _ask(judge, grade, query, temperature, max_tokens, run, "query")
    if reply.error is not None:
        return _failed(grade, reply)
    score = read_score(reply.text)
    tries = 1
    while score is None:
        reply = _ask(judge, grade, query + DIGIT_SUFFIX, temperature, max_tokens, run, "query + digit suffix")
        if reply.error is not None:
            return _failed(grade, reply)
        tries += 1
        temperature += TEMPERATURE_STEP
        if tries > MAX_RETRIES:
            grade.score, grade.content, grade.exhausted = 0.0, reply.text, True
            return grade
        score = read_score(reply.text)
    grade.score, grade.content = score, first_piece(reply.text)
    return grade


def _ask_patiently(
    judge: Judge, grade: Grade, query: str, temperature: float, max_tokens: int, run: int, asked: str
) -> JudgeReply:
    """lmms-eval's ``get_chat_response``: an empty reply is asked again, up to ``LMMS_PATIENCE`` calls."""
    reply = JudgeReply()
    for _ in range(LMMS_PATIENCE):
        reply = _ask(judge, grade, query, temperature, max_tokens, run, asked)
        if reply.error is not None or reply.text.strip():
            return reply
    return reply


def grade_lmms_eval(judge: Judge, query: str, run: int, max_tokens: int = 128) -> Grade:
    """lmms-eval's ``mmvet_process_results`` chain for one item (see the module notes for the limit)."""
    grade = Grade()
    temperature = 0.0
    same_temperature = 0
    while True:
        reply = _ask_patiently(judge, grade, query, temperature, max_tokens, run, "query")
        if reply.error is not None:
            return _failed(grade, reply)
        text = reply.text.strip()
        if not text:
            grade.score, grade.content, grade.exhausted = 0.0, "", True
            return grade
        try:
            value = float(first_piece(text))
        except ValueError:
            temperature += TEMPERATURE_STEP
            _ask_patiently(judge, grade, query, temperature, max_tokens, run, "re-ask (reply not read)")
            if temperature >= LMMS_MAX_TEMPERATURE:
                grade.score, grade.content, grade.exhausted = 0.0, first_piece(text), True
                return grade
            continue
        if 0.0 <= value <= 1.0:
            grade.score, grade.content = value, first_piece(text)
            return grade
        same_temperature += 1
        if same_temperature >= LMMS_SAME_TEMPERATURE_LIMIT:
            grade.score, grade.content, grade.exhausted = 0.0, first_piece(text), True
            return grade


@dataclass(frozen=True)
class Grader:
    """How one protocol grades: the message builder, the call chain, the default max_tokens."""

    name: str
    query: Callable[[str, str, str, str], str]
    chain: Callable[[Judge, str, int, int], Grade]
    max_tokens: int


GRADERS = {
    "official": Grader("official", official_query, grade_official, 3),
    "lmms-eval": Grader("lmms-eval", lmms_eval_query, grade_lmms_eval, 128),
}


# ---------------------------------------------------------------------------------------------
# Aggregation


def cap_set_name(capabilities: Sequence[str]) -> str:
    """A capability set's name: its members sorted and joined by "_" (the official names follow Python's
    set iteration order, which varies between runs of the evaluator)."""
    return "_".join(sorted(set(capabilities)))


def ordered_by_count(keys: Sequence[str]) -> list[str]:
    """Distinct keys, most frequent first, ties in order of first appearance (the official column order)."""
    counts: dict[str, int] = {}
    for key in keys:
        counts[key] = counts.get(key, 0) + 1
    return sorted(counts, key=lambda k: -counts[k])


def _percent(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) * 100.0 if values else None  # the evaluator: sum / count * 100


@dataclass
class RunScores:
    """One grading run: the total, per capability and per capability set (percent; None: no item graded)."""

    total: float | None
    capability: dict[str, float | None]
    integration: dict[str, float | None]


def run_scores(
    scores: Mapping[str, float | None],
    capabilities: Mapping[str, Sequence[str]],
    cap_order: Sequence[str],
    set_order: Sequence[str],
) -> RunScores:
    """100 x mean score over the graded items: all, with each capability, with exactly each set."""
    graded = {sid: s for sid, s in scores.items() if s is not None}
    by_cap = {c: [s for sid, s in graded.items() if c in capabilities[sid]] for c in cap_order}
    by_set = {n: [s for sid, s in graded.items() if cap_set_name(capabilities[sid]) == n] for n in set_order}
    return RunScores(
        _percent(list(graded.values())),
        {c: _percent(v) for c, v in by_cap.items()},
        {n: _percent(v) for n, v in by_set.items()},
    )


def mean_over_runs(values: Sequence[float | None]) -> float | None:
    """Mean of the runs that graded something (None when none did)."""
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def population_std(values: Sequence[float]) -> float:
    """numpy's default ``std`` (ddof 0), as the evaluator reports the spread of the per-run totals."""
    if not values:
        return 0.0
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


# ---------------------------------------------------------------------------------------------
# The task result

ROUND_DECIMALS = 1  # the evaluator's csv tables
PROMPT_SOURCE = (
    "the `prompt` string of https://github.com/yuweihao/MM-Vet/blob/main/mm-vet_evaluator.py, saved as UTF-8 "
    "text ending with the newline after the last few-shot row"
)


def judge_instruction(samples: Sequence[Sample]) -> str:
    """The instruction text the loader read from the data root; a DataError names the missing file."""
    for sample in samples:
        text = sample.metadata.get("judge_instruction")
        if text is None:
            path = sample.metadata.get("judge_prompt_path", "mm-vet/mmvet_judge_prompt.txt")
            raise DataError(f"{path}: MM-Vet judge instruction not found; add {PROMPT_SOURCE}")
        return str(text)
    return ""


@dataclass
class Graded:
    """Every run's grades by sample id, and the samples with an answer to grade."""

    runs: list[dict[str, Grade]]
    answered: set[str]


def _usable(response: Response | None) -> bool:
    return response is not None and response.error is None


def grade_all(
    samples: Sequence[Sample],
    responses: Mapping[str, Response],
    judge: Judge,
    grader: Grader,
    runs: int,
    max_tokens: int,
) -> Graded:
    """Run after run (all items of run 0, then run 1...), items of one run through ``judge_map``."""
    instruction = judge_instruction(samples)
    answered = [s for s in samples if _usable(responses.get(s.id))]
    queries = {s.id: grader.query(instruction, s.question, str(s.target), responses[s.id].text) for s in answered}
    ids = [s.id for s in answered]
    graded: list[dict[str, Grade]] = []
    for run in range(runs):
        grades = judge_map(judge, partial(_grade_one, judge, grader, queries, run, max_tokens), ids)
        graded.append(dict(zip(ids, grades)))
    return Graded(graded, set(ids))


def _grade_one(judge: Judge, grader: Grader, queries: Mapping[str, str], run: int, max_tokens: int, sid: str) -> Grade:
    return grader.chain(judge, queries[sid], run, max_tokens)


def run_item_scores(samples: Sequence[Sample], graded: Graded, run: int) -> dict[str, float | None]:
    """One run's score per sample: the grade, 0.0 for a sample without an answer, None for a failed call."""
    return {s.id: graded.runs[run][s.id].score if s.id in graded.answered else 0.0 for s in samples}


def _item_means(per_run: Sequence[Mapping[str, float | None]], ids: Sequence[str]) -> list[float]:
    """Per item, the mean of its graded runs (items never graded are left out)."""
    out = []
    for sid in ids:
        values = [r[sid] for r in per_run if r[sid] is not None]
        if values:
            out.append(sum(values) / len(values))
    return out


def _metric(run_values: Sequence[float | None], item_means: Sequence[float], description: str) -> Metric | None:
    """The mean over runs with an item-level standard error; None when no run graded any item."""
    value = mean_over_runs(run_values)
    if value is None:
        return None
    se = mean_stderr(item_means)
    return make_metric(value, None if se is None else 100.0 * se, len(item_means), description)


def _rounded(value: float | None) -> Metric | None:
    return None if value is None else Metric(value=round(value, ROUND_DECIMALS))


def defined(metrics: Mapping[str, Metric | None]) -> dict[str, Metric]:
    """The entries with a value (an undefined number is left out, never written as NaN)."""
    return {name: m for name, m in metrics.items() if m is not None}


def _official_tables(
    tables: Sequence[RunScores], caps: Sequence[str], sets: Sequence[str]
) -> dict[str, dict[str, Metric]]:
    """The evaluator's two csv rows: each column the mean over runs to 1 decimal, std, per-run totals."""
    totals = [t.total for t in tables if t.total is not None]
    tail = {"total": _rounded(mean_over_runs(totals)), "std": _rounded(population_std(totals) if totals else None)}
    tail.update({f"run {j + 1}": _rounded(t.total) for j, t in enumerate(tables)})
    cap_row = {c: _rounded(mean_over_runs([t.capability[c] for t in tables])) for c in caps}
    set_row = {n: _rounded(mean_over_runs([t.integration[n] for t in tables])) for n in sets}
    return {"official_cap_score": defined({**cap_row, **tail}), "official_cap_int_score": defined({**set_row, **tail})}


def _sample_score(sample: Sample, graded: Graded, per_run: Sequence[Mapping[str, float | None]]) -> SampleScore:
    caps = list(sample.metadata["capability"])
    detail: dict[str, Any] = {"capability": caps, "capability_set": cap_set_name(caps), "answer": sample.target}
    if sample.id not in graded.answered:
        detail["graded"] = "no: no answer (scored 0.0 without a judge call)"
        return SampleScore(sample_id=sample.id, parsed=None, score=0.0, detail=detail)
    grades = [run[sample.id] for run in graded.runs]
    values = [r[sample.id] for r in per_run if r[sample.id] is not None]
    detail.update(
        scores=[g.score for g in grades],
        content=[g.content for g in grades],
        **judge_trail(grades, [g.calls for g in grades]),
    )
    return SampleScore(
        sample_id=sample.id,
        parsed=[g.score for g in grades],
        score=sum(values) / len(values) if values else None,
        parse_failed=any(g.exhausted for g in grades),
        detail=detail,
    )


def _notes(
    graded: Graded, grader: Grader, tables: Sequence[RunScores], n_missing: int, n_errors: int, n_samples: int
) -> list[str]:
    grades = [g for run in graded.runs for g in run.values()]
    models = sorted({g.model for g in grades if g.model}) or ["unknown model"]
    totals = ", ".join("-" if t.total is None else f"{t.total:.1f}" for t in tables)
    calls = sum(len(g.calls) for g in grades)
    notes = [
        f"graded by {', '.join(models)} ({grader.name} grader): {len(tables)} run(s), totals [{totals}], "
        f"{calls} judge calls"
    ]
    failed = sum(1 for g in grades if g.error is not None)
    if failed:
        notes.append(
            f"{failed} gradings failed in the judge call (transport) and were left out of their run's "
            "means (see judge_failures)"
        )
    exhausted = sum(1 for g in grades if g.exhausted)
    if exhausted:
        notes.append(
            f"{exhausted} gradings gave no readable score after the grader's retries: scored 0.0 "
            "(counted as parse failures)"
        )
    if n_missing:
        notes.append(
            f"{n_missing} of {n_samples} questions have no answer: scored 0.0 without a judge call "
            "(the evaluator divides by every question)"
        )
    if n_errors:
        notes.append(f"{n_errors} answers are model errors: scored 0.0 without a judge call")
    notes.append(
        "capability sets are named by their sorted members joined by '_' (the evaluator's csv names "
        "follow Python's set order, which varies)"
    )
    return notes


@dataclass(frozen=True)
class Layout:
    """The capabilities of each sample, the capability columns and the capability-set columns (official order)."""

    capabilities: dict[str, tuple[str, ...]]
    caps: list[str]
    sets: list[str]

    @classmethod
    def of(cls, samples: Sequence[Sample]) -> Layout:
        capabilities = {s.id: tuple(s.metadata["capability"]) for s in samples}
        caps = ordered_by_count([c for s in samples for c in dict.fromkeys(capabilities[s.id])])
        sets = ordered_by_count([cap_set_name(capabilities[s.id]) for s in samples])
        return cls(capabilities, caps, sets)

    def with_cap(self, cap: str) -> list[str]:
        return [sid for sid, caps in self.capabilities.items() if cap in caps]

    def with_set(self, name: str) -> list[str]:
        return [sid for sid, caps in self.capabilities.items() if cap_set_name(caps) == name]


def _metrics(
    tables: Sequence[RunScores], per_run: Sequence[Mapping[str, float | None]], layout: Layout, grades: list[Grade]
) -> dict[str, Metric]:
    ids = list(layout.capabilities)
    metrics: dict[str, Metric | None] = {
        "total": _metric([t.total for t in tables], _item_means(per_run, ids), "100 x mean score")
    }
    for cap in layout.caps:
        values = [t.capability[cap] for t in tables]
        metrics[cap] = _metric(values, _item_means(per_run, layout.with_cap(cap)), f"questions needing {cap}")
    totals = [t.total for t in tables if t.total is not None]
    metrics["total_std"] = Metric(
        value=population_std(totals), n=len(totals), higher_is_better=False, description="population std of run totals"
    )
    metrics["judge_failures"] = Metric(
        value=float(sum(g.error is not None for g in grades)),
        n=len(grades),
        higher_is_better=False,
        description="gradings whose judge call failed (left out of their run)",
    )
    return defined(metrics)


def _breakdowns(
    tables: Sequence[RunScores], per_run: Sequence[Mapping[str, float | None]], layout: Layout
) -> dict[str, dict[str, Metric]]:
    integration = {
        name: _metric([t.integration[name] for t in tables], _item_means(per_run, layout.with_set(name)), name)
        for name in layout.sets
    }
    runs = {
        f"run {j + 1}": Metric(value=t.total, n=sum(v is not None for v in per_run[j].values()))
        for j, t in enumerate(tables)
        if t.total is not None
    }
    official = _official_tables(tables, layout.caps, layout.sets)
    return {"capability_integration": defined(integration), "runs": runs, **official}


def grade_and_aggregate(job: JudgedScoring) -> TaskResult:
    """Grade every answered sample ``judge_runs`` times and aggregate as the chosen grader's tool does."""
    grader = GRADERS[setting_choice(job.settings, "grader", tuple(GRADERS), "official")]
    runs = job.judge_runs(default=1)
    max_tokens = int(job.settings.get("judge_max_tokens", grader.max_tokens))
    samples = job.samples
    graded = grade_all(samples, job.responses, job.judge, grader, runs, max_tokens)
    per_run = [run_item_scores(samples, graded, j) for j in range(runs)]
    layout = Layout.of(samples)
    tables = [run_scores(r, layout.capabilities, layout.caps, layout.sets) for r in per_run]
    grades = [g for run in graded.runs for g in run.values()]
    counts = job.counts
    return task_result(
        job.header,
        _metrics(tables, per_run, layout, grades),
        [_sample_score(s, graded, per_run) for s in samples],
        counts,
        _notes(graded, grader, tables, counts.missing, counts.errors, len(samples)),
        _breakdowns(tables, per_run, layout),
        parse_failures=sum(1 for g in grades if g.exhausted),
    )


score_mmvet = needs_judge(grade_and_aggregate, "needs a judge (MM-Vet answers are graded by GPT-4; see --judge)")


# ---------------------------------------------------------------------------------------------
# Statistics


def estimands(records: Sequence[Record]) -> Estimands:
    """total and each capability as the mean over grading runs of 100 x the run's mean score; items are
    resampled by image with all their runs together (a failed grading leaves the item out of that run)."""
    runs = max((len(detail(r, "scores", [])) for r in records), default=0) or 1
    sums = ColumnSums()
    groups: list[str] = ["total"]
    for r in records:
        if r.get("score") is None and detail(r, "scores") is None:
            continue
        scores = detail(r, "scores")
        per_run = [0.0] * runs if scores is None else list(scores)  # unanswered: 0.0 in every run
        caps = [str(c) for c in detail(r, "capability", [])]
        groups.extend(c for c in caps if c not in groups)
        cluster = meta(r, "imagename", r["id"])
        for j, value in enumerate(per_run):
            if value is None:
                continue
            for group in ("total", *caps):
                sums.add(cluster, f"{group}:{j}:sum", float(value))
                sums.add(cluster, f"{group}:{j}:n", 1.0)
    columns = sums.frozen()
    out: dict[str, Estimand] = {}
    for group in groups:
        cols = {name: col for name, col in columns.items() if name.split(":")[0] == group}
        if cols:
            combine = percent_ratio_over_runs(group, runs, "sum", "n")
            out[group] = Estimand(group, combine, cols, "image", "mean over runs of 100 x mean score")
    return Estimands(out)
