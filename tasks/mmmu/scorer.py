"""MMMU scoring: MMMU's ``main_parse_and_eval.py`` / ``main_eval_only.py`` (official) and lmms-eval's ``mmmu_val``.

Official (MMMU-Benchmark/MMMU @ bb0b95a, ``mmmu/``; the published LLaVA-1.5 outputs give 36.7 with it):

1. only the questions that have an answer are scored (both scripts walk the model's outputs), per subject;
2. a multiple-choice answer is parsed by ``parse_multi_choice_response`` (``parsing.parse_multi_choice``);
   its random fallback draws from one generator seeded with 42 (``random.seed(42)`` when
   ``eval_utils`` is imported), in the order ``main_parse_and_eval.py --subject ALL`` parses: subjects
   in ``CAT_SHORT2LONG`` order (``subjects.SUBJECTS``), each subject's answers in their order (the
   answers file's order under ``harness score``, the data order in a run). So which letter a
   no-candidate answer gets depends on every earlier draw: a ``--limit`` subset or a missing answer
   changes the later draws, as in the official script. Right when equal to the gold letter;
3. an open answer is parsed by ``parse_open_response`` and matched by ``eval_open``;
4. accuracy per subject, per discipline and overall weighted by questions (``calculate_ins_level_acc``:
   the sum of accuracy x count over the sum of counts, the plain mean over the questions).

Already-parsed predictions (MMMU's output JSON ``{id: prediction}``, read by ``main_eval_only.py``):
a multiple-choice prediction is compared as it is, with no parsing (nor random draw); open ones are
parsed as above.

lmms-eval (``mmmu/utils.py`` of lmms-eval 0.7.3): its parser variant (``parsing`` module docstring),
the gold answer as the dataset's ``answer`` string (a stringified list of answers stays one string, so
such an open question is matched against the whole ``"['a', 'b']"`` text), the same per-subject and
question-weighted aggregation. Its random fallback uses Python's global generator, which the lmms-eval
command line seeds with 0 before the run; here a generator seeded with 0 draws in document order (the
model's calls in between may draw too, so these letters are lmms-eval's only when nothing else drew).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from harness.results.records import Record, detail, mean_of, scored
from harness.stats.analytic import mean_metric
from harness.stats.bootstrap import Estimands
from harness.types import Metric, Response, Sample, SampleScore, TaskResult
from tasks.common.answers import Counts
from tasks.common.scoring import Header, right_or_wrong, task_result
from tasks.mmmu.parsing import Style, choice_correct, open_correct, parse_multi_choice, parse_open
from tasks.mmmu.subjects import DISCIPLINE_OF, DISCIPLINES, SUBJECTS

MULTIPLE_CHOICE = "multiple-choice"
OFFICIAL_SEED = 42  # random.seed(42) in mmmu/utils/eval_utils.py
LMMS_EVAL_SEED = 0  # lmms-eval's default --seed for Python's random
Mode = Literal["raw", "parsed"]


def metric_key(discipline: str) -> str:
    """The metric name of a discipline: ``Art and Design`` -> ``art_and_design``."""
    return discipline.lower().replace(" ", "_")


DISCIPLINE_METRICS = {metric_key(d): d for d in DISCIPLINES}


@dataclass(frozen=True)
class Question:
    """What scoring needs of one question."""

    id: str
    subject: str
    question_type: str
    all_choices: tuple[str, ...]
    index2ans: dict[str, str]
    gold: Any  # a letter or text, or a list of them

    @property
    def multiple_choice(self) -> bool:
        return self.question_type == MULTIPLE_CHOICE


def question_of(sample: Sample, style: Style) -> Question:
    """The question of a loaded sample; lmms-eval compares with the dataset's raw ``answer`` string."""
    meta = sample.metadata
    gold = meta.get("raw_answer", sample.target) if style == "lmms-eval" else sample.target
    return Question(
        sample.id, str(meta["subject"]), str(meta["question_type"]), tuple(meta.get("all_choices") or ()),
        dict(meta.get("index2ans") or {}), gold,
    )  # fmt: skip


def parse_order(questions: Sequence[Question], style: Style) -> list[int]:
    """The order answers are parsed in (the random draws follow it): MMMU's subject order, then the given
    order within a subject; lmms-eval's document order."""
    if style == "lmms-eval":
        return list(range(len(questions)))
    rank = {subject: n for n, subject in enumerate(SUBJECTS)}
    return sorted(range(len(questions)), key=lambda i: (rank.get(questions[i].subject, len(rank)), i))


def judge(question: Question, text: str, rng: random.Random, style: Style, mode: Mode) -> tuple[Any, bool, bool]:
    """(parsed prediction, correct, whether a random letter was drawn) for one answer."""
    if not question.multiple_choice:
        parsed = parse_open(text)
        return parsed, open_correct(question.gold, parsed), False
    if mode == "parsed":
        return text, choice_correct(question.gold, text), False
    before = rng.getstate()
    letter = parse_multi_choice(text, question.all_choices, question.index2ans, rng, style)
    return letter, choice_correct(question.gold, letter), rng.getstate() != before


def _grouped_metrics(scores: Sequence[SampleScore], questions: Mapping[str, Question]) -> dict[str, dict[str, Metric]]:
    by_subject: dict[str, list[float]] = {}
    for s in scores:
        by_subject.setdefault(questions[s.sample_id].subject, []).append(s.score)
    subjects = {name: mean_metric(by_subject[name]) for name in SUBJECTS if name in by_subject}
    disciplines = {}
    for discipline, members in DISCIPLINES.items():
        values = [v for name in members for v in by_subject.get(name, [])]
        if values:
            disciplines[discipline] = mean_metric(values)
    return {"discipline": disciplines, "subject": subjects}


def score_mmmu(
    samples: Sequence[Sample],
    responses: Mapping[str, Response],
    header: Header,
    style: Style = "mmmu",
    mode: Mode = "raw",
) -> TaskResult:
    """Accuracy overall, per discipline and per subject over the answered questions (see the module doc)."""
    answered = [s for s in samples if s.id in responses]
    questions = [question_of(s, style) for s in answered]
    rng = random.Random(OFFICIAL_SEED if style == "mmmu" else LMMS_EVAL_SEED)
    per_sample: dict[int, SampleScore] = {}
    n_errors = n_random = 0
    for i in parse_order(questions, style):
        question, response = questions[i], responses[questions[i].id]
        n_errors += response.error is not None
        parsed, correct, drew = judge(question, response.text, rng, style, mode)
        n_random += drew
        info = {"subject": question.subject, "discipline": DISCIPLINE_OF.get(question.subject, ""),
                "question_type": question.question_type, "random_choice": drew}  # fmt: skip
        per_sample[i] = right_or_wrong(question.id, parsed, correct, info, parse_failed=drew)
    scores = [per_sample[i] for i in range(len(questions))]
    by_id = {q.id: q for q in questions}
    groups = _grouped_metrics(scores, by_id)
    metrics = {"accuracy": mean_metric([s.score for s in scores], description="accuracy over answered questions")}
    for key, discipline in DISCIPLINE_METRICS.items():
        if discipline in groups["discipline"]:
            metrics[key] = groups["discipline"][discipline]
    notes = []
    n_missing = len(samples) - len(answered)
    if n_missing:
        notes.append(f"{n_missing} of {len(samples)} questions have no answer; left out, as MMMU's evaluation does")
    if n_random:
        notes.append(f"{n_random} multiple-choice answers named no option; a random letter was drawn (seeded)")
    return task_result(header, metrics, scores, Counts(len(samples), n_errors, n_missing), notes, groups)


def score_official(samples: Sequence[Sample], responses: Mapping[str, Response], header: Header) -> TaskResult:
    """MMMU's main_parse_and_eval.py: raw answers parsed (seeded random fallback), question-weighted accuracy."""
    return score_mmmu(samples, responses, header, "mmmu")


def score_lmms_eval(samples: Sequence[Sample], responses: Mapping[str, Response], header: Header) -> TaskResult:
    """lmms-eval's mmmu_val: its parser, the dataset's answer strings, the same aggregation."""
    return score_mmmu(samples, responses, header, "lmms-eval")


# ---------------------------------------------------------------------------------------------
# Statistics


def estimands(records: Sequence[Record]) -> Estimands:
    """accuracy and each discipline's accuracy: means of independent questions (question-weighted, as
    ``calculate_ins_level_acc``)."""
    rows = scored(records)
    out = {"accuracy": mean_of("accuracy", rows)}
    for key, discipline in DISCIPLINE_METRICS.items():
        members = [r for r in rows if detail(r, "discipline") == discipline]
        if members:
            out[key] = mean_of(key, members)
    return Estimands(out)
