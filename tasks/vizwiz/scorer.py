"""VizWiz VQA scoring: the VizWiz evaluator on val, lmms-eval's variant, and the test-dev submission.

val (``vizwiz_val``), per question, with the settings of the protocol:

- ``prediction_processor``: ``"evalai"`` runs LLaVA's ``EvalAIAnswerProcessor`` on the prediction first,
  as ``convert_vizwiz_for_submission.py`` does before upload (the llava15 default: what the test-dev
  server receives); ``"none"`` leaves it as the model wrote it.
- ``scorer``: ``"official"`` is the VizWiz VQA evaluator (the ``vqaEval.py`` of the VizWiz API, Qing
  Li's, handed out as example code on vizwiz.org/tasks-and-datasets/vqa; its header links no repository,
  only the placeholder ``https://github.com/xxx``, kept by the copies a code search finds): the
  prediction is whitespace-cleaned and always put through the punctuation and digit/article steps of
  vqaEval.py; the ten human answers are compared as written (VizWiz ships them normalised);
  leave-one-out over the answers' *positions* (``i != j``), so identical answer records do not leave
  each other out as GT-Vision-Lab's dict comparison would (VizWiz answers carry no ``answer_id``).
  ``"lmms-eval"`` is lmms-eval v0.7's ``vizwiz_vqa_process_results``: the whole EvalAI processor on the
  prediction and on every answer, then the same positional leave-one-out.

Reported: ``overall`` and the four VizWiz answer types (``other``, ``yes/no``, ``number``,
``unanswerable``) as metrics, and a breakdown by answer type. Values are 100 x the mean of the
unrounded per-question scores (the evaluator prints ``round(100*mean, 2)``). The evaluator's
answerability average precision / F1 need an answerability score per question, which a generated
answer does not give: not reported.

test-dev (``vizwiz``): the answers are private, so there is no local score; the submission file is
LLaVA's ``convert_vizwiz_for_submission.py`` output (:func:`build_submission`).
"""

from __future__ import annotations

import json
import warnings
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.data.readers import iter_jsonl, require_fields
from harness.results.records import Record, mean_of, meta, scored
from harness.stats.analytic import mean_metric
from harness.stats.bootstrap import Estimand, Estimands
from harness.types import Metric, Response, Sample, SampleScore, TaskResult
from tasks.common.answers import collect_answers
from tasks.common.requests import setting_choice
from tasks.common.scoring import partial_credit, task_result
from tasks.common.vqa_eval import (
    Scored,
    clean_whitespace,
    evalai_answer,
    leave_one_out_accuracy,
    normalize_official,
    prediction_processor,
    textvqa_score,
)

ANSWER_TYPES = ("other", "yes/no", "number", "unanswerable")
EVALAI_CHALLENGE = "https://eval.ai/web/challenges/challenge-page/2185"
EXPORT_NAME = "vizwiz_test-dev_submission.json"


def vizwiz_score(prediction: str, answers: Sequence[str]) -> Scored:
    """One question as the VizWiz evaluator scores it: normalised prediction, answers as written,
    leave-one-out over answer positions (no answers: 0, where the evaluator would divide by zero)."""
    pred = normalize_official(clean_whitespace(prediction))
    return Scored(leave_one_out_accuracy(pred, answers), pred, tuple(answers), True)


def lmms_eval_score(prediction: str, answers: Sequence[str]) -> Scored:
    """One question as lmms-eval's ``vizwiz_vqa_process_results`` scores it (EvalAI on both sides)."""
    return textvqa_score(prediction, answers, require_ten=False)


_SCORERS: dict[str, Callable[[str, Sequence[str]], Scored]] = {"official": vizwiz_score, "lmms-eval": lmms_eval_score}
_SEMANTICS = {
    ("official", "evalai"): "the VizWiz evaluator on answers passed through LLaVA's EvalAI answer processor",
    ("official", "none"): "the VizWiz evaluator on the raw answers",
    ("lmms-eval", "evalai"): "lmms-eval's vizwiz_vqa_process_results on EvalAI-processed answers",
    ("lmms-eval", "none"): "lmms-eval's vizwiz_vqa_process_results",
}


def _metric(rows: Sequence[tuple[Sample, float]], description: str = "") -> Metric:
    return mean_metric([score for _, score in rows], description=description)


def score_val(
    samples: Sequence[Sample],
    responses: Mapping[str, Response],
    settings: Mapping[str, Any],
    name: str,
    version: str,
    headline: Sequence[str] = ("overall",),
) -> TaskResult:
    """Score val samples (targets: the ten answers) under the protocol's settings."""
    process = prediction_processor(settings)
    scorer_name = setting_choice(settings, "scorer", tuple(_SCORERS), "official")
    scorer = _SCORERS[scorer_name]
    answers = collect_answers(samples, responses)
    rows: list[tuple[Sample, float]] = []
    per_sample: list[SampleScore] = []
    for sample, text in zip(samples, answers.texts):
        result = scorer(process(text), sample.target or [])
        rows.append((sample, result.accuracy))
        detail = {"answers": list(result.answers)}
        per_sample.append(partial_credit(sample.id, result.prediction, result.accuracy, detail))
    key = (scorer_name, str(settings.get("prediction_processor", "evalai")))
    description = f"VQA accuracy (leave-one-out over the answers), percent; {_SEMANTICS[key]}"
    metrics = {"overall": _metric(rows, description)}
    groups: dict[str, list[tuple[Sample, float]]] = defaultdict(list)
    for row in rows:
        groups[str(row[0].metadata.get("answer_type") or "")].append(row)
    by_type = {t: _metric(groups[t]) for t in sorted(groups)}
    for answer_type in ANSWER_TYPES:
        if answer_type in by_type:
            metrics[answer_type] = by_type[answer_type]
    notes = answers.missing_note(len(samples), "empty predictions")
    notes.append(f"scorer {key[0]}, prediction processor {key[1]}; values unrounded (the evaluator prints 2 decimals)")
    return task_result((name, version, headline), metrics, per_sample, answers.counts, notes, {"answer_type": by_type})


def estimands(records: Sequence[Record]) -> Estimands:
    """overall and the answer types as means of per-question scores (one question per image)."""
    rows = scored(records)
    out: dict[str, Estimand] = {"overall": mean_of("overall", rows, binary=False)}
    for answer_type in ANSWER_TYPES:
        members = [r for r in rows if meta(r, "answer_type") == answer_type]
        if members:
            out[answer_type] = mean_of(answer_type, members, binary=False)
    return Estimands(out)


def score_test_dev(samples: Sequence[Sample], responses: Mapping[str, Response], name: str, version: str) -> TaskResult:
    """No metrics: each answer as it would be uploaded (EvalAI-processed), missing ones counted."""
    answers = collect_answers(samples, responses)
    per_sample = [
        SampleScore(sample_id=s.id, parsed=evalai_answer(text), detail={"raw": text})
        for s, text in zip(samples, answers.texts)
    ]
    notes = [
        "VizWiz test-dev answers are private: there is no local score. Upload the submission file "
        f"(harness export vizwiz, {EXPORT_NAME}) to the VizWiz VQA challenge on EvalAI ({EVALAI_CHALLENGE}); "
        "for a local check use the vizwiz_val task."
    ]
    notes.extend(answers.missing_note(len(samples), "empty answers in the submission"))
    return task_result((name, version, ()), {}, per_sample, answers.counts, notes)


@dataclass
class Submission:
    """The upload: one {image, answer} per question-file line, in file order, and what was left out."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # question ids without an answer (LLaVA's script asserts)
    unknown_ids: list[str] = field(default_factory=list)  # answered ids not in the question file


def build_submission(question_file: Path, answers: Mapping[str, str]) -> Submission:
    """LLaVA's ``convert_vizwiz_for_submission.py`` on answers keyed by str(question_id).

    Every line of ``question_file`` (``llava_test.jsonl``) gives ``{"image": <its image>, "answer":
    EvalAI(answer)}``, in file order. LLaVA's script stops on an unanswered question (an assert); here
    such a question gets ``""`` and is reported, so a partial run still gives a file of the right shape.
    """
    out = Submission()
    seen: set[str] = set()
    for lineno, rec in iter_jsonl(question_file):
        require_fields(rec, ("question_id", "image"), f"{question_file}:{lineno}")
        key = str(rec["question_id"])
        seen.add(key)
        if key in answers:
            out.entries.append({"image": rec["image"], "answer": evalai_answer(answers[key])})
        else:
            out.entries.append({"image": rec["image"], "answer": ""})
            out.missing.append(key)
    out.unknown_ids = [key for key in answers if key not in seen]
    return out


def write_submission(
    samples: Sequence[Sample], responses: Mapping[str, Response], question_file: Path, output: Path
) -> tuple[Path, Submission]:
    """Write the submission JSON array; warn about unanswered questions and answers left out."""
    answers = {str(s.metadata["question_id"]): responses[s.id].text for s in samples if s.id in responses}
    submission = build_submission(question_file, answers)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(submission.entries), encoding="utf-8")
    if submission.missing:
        warnings.warn(
            f'{len(submission.missing)} question(s) of {question_file} have no answer and are uploaded as "" '
            f"(LLaVA's converter refuses such a run), e.g. {submission.missing[0]}",
            stacklevel=2,
        )
    if submission.unknown_ids:
        warnings.warn(
            f"{len(submission.unknown_ids)} answered question(s) are not in {question_file} and are not in the "
            f"submission: {', '.join(submission.unknown_ids[:5])}",
            stacklevel=2,
        )
    return output, submission
