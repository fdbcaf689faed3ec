"""VQA-v2 scoring: the official ``vqaEval.py`` on val2014, lmms-eval's variant, and the test-dev submission.

val2014 (``vqav2_val``), per question, with the settings of the protocol:

- ``prediction_processor``: ``"evalai"`` runs LLaVA's ``EvalAIAnswerProcessor`` on the prediction
  first, as ``convert_vqav2_for_submission.py`` does before upload (the llava15 default: the closest
  local stand-in for the test-dev server); ``"none"`` leaves it as the model wrote it.
- ``scorer``: ``"official"`` is ``VQAEval.evaluate`` (normalise only when the ten answers differ);
  ``"lmms-eval"`` is lmms-eval v0.7's ``vqav2_process_results`` (strip, then EvalAI's punctuation and
  digit/article steps on both sides, always).

Reported: ``overall`` and the three answer types (``yes/no``, ``number``, ``other``) as metrics,
and breakdowns per answer type and per question type. Values are 100 x the mean of the *unrounded*
per-question scores; the official tool prints them rounded to 2 decimals (``round(100*mean, 2)``),
which we leave to the display. Standard errors cluster questions by image.

test-dev (``vqav2``): the answers are private, so there is no local score; the submission file is
LLaVA's ``convert_vqav2_for_submission.py`` output (:func:`build_submission`).
"""

from __future__ import annotations

import json
import warnings
from collections import defaultdict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.data.readers import iter_jsonl, require_fields
from harness.results.records import Record, meta, metadata_key, scored
from harness.stats.analytic import mean_metric
from harness.stats.bootstrap import Estimand, Estimands, mean_estimand
from harness.types import Metric, Response, Sample, SampleScore, TaskResult
from tasks.common.answers import collect_answers
from tasks.common.requests import setting_choice
from tasks.common.scoring import partial_credit, task_result
from tasks.common.vqa_eval import (
    Scored,
    clean_whitespace,
    evalai_answer,
    evalai_steps,
    lmms_eval_vqa_score,
    official_vqa_score,
    prediction_processor,
)

ANSWER_TYPES = ("yes/no", "number", "other")
EVALAI_CHALLENGE = "https://eval.ai/web/challenges/challenge-page/830"

Scorer = Callable[[str, Sequence[str], Sequence[Hashable] | None], Scored]
_SCORERS: dict[str, Scorer] = {"official": official_vqa_score, "lmms-eval": lmms_eval_vqa_score}


def _choice(settings: Mapping[str, Any], key: str, options: Mapping[str, Any], default: str) -> Any:
    """The option a protocol setting names (a bad name is a UsageError listing the choices)."""
    return options[setting_choice(settings, key, tuple(options), default)]


def _by(keys: Sequence[str], scores: Sequence[float], images: Sequence[Hashable]) -> dict[str, Metric]:
    """A metric per distinct key (sorted), over the questions with that key."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, key in enumerate(keys):
        groups[key].append(i)
    return {
        name: mean_metric([scores[i] for i in groups[name]], [images[i] for i in groups[name]])
        for name in sorted(groups)
    }


def score_val(
    samples: Sequence[Sample],
    responses: Mapping[str, Response],
    settings: Mapping[str, Any],
    name: str,
    version: str,
    headline: Sequence[str] = ("overall",),
) -> TaskResult:
    """Score val2014 samples (targets: the ten answers) under the protocol's settings."""
    process = prediction_processor(settings)
    scorer = _choice(settings, "scorer", _SCORERS, "official")
    answers = collect_answers(samples, responses)
    scores: list[float] = []
    images: list[Hashable] = []  # the cluster of each question (its image), for the standard errors
    answer_types: list[str] = []
    question_types: list[str] = []
    per_sample: list[SampleScore] = []
    for sample, text in zip(samples, answers.texts):
        metadata = sample.metadata
        kept = metadata.get("answer_records")  # None: (confidence, id) pairs all distinct
        records = None if kept is None else [tuple(r) for r in kept]
        scored = scorer(process(text), sample.target, records)
        scores.append(scored.accuracy)
        images.append(metadata["image_id"])
        answer_types.append(str(metadata["answer_type"]))
        question_types.append(str(metadata["question_type"]))
        detail = {"answers": list(scored.answers), "normalized": scored.normalized}
        per_sample.append(partial_credit(sample.id, scored.prediction, scored.accuracy, detail))
    description = f"VQA accuracy (leave-one-out over 10 answers), percent; {semantics(settings)}"
    metrics = {"overall": mean_metric(scores, images, description=description)}
    by_type = _by(answer_types, scores, images)
    for answer_type in ANSWER_TYPES:
        if answer_type in by_type:
            metrics[answer_type] = by_type[answer_type]
    notes = answers.missing_note(len(samples), "empty predictions")
    notes.append(
        f"scorer {settings.get('scorer', 'official')}, prediction processor "
        f"{settings.get('prediction_processor', 'evalai')}; values unrounded (the official tool prints 2 decimals)"
    )
    breakdowns = {"answer_type": by_type, "question_type": _by(question_types, scores, images)}
    return task_result((name, version, headline), metrics, per_sample, answers.counts, notes, breakdowns)


_SEMANTICS = {
    ("official", "evalai"): "vqaEval.py on answers passed through LLaVA's EvalAI answer processor (as uploaded)",
    ("official", "none"): "vqaEval.py on the raw answers",
    ("lmms-eval", "evalai"): "lmms-eval's vqav2_process_results on answers passed through the EvalAI processor",
    ("lmms-eval", "none"): "lmms-eval's vqav2_process_results on the raw answers",
}


def semantics(settings: Mapping[str, Any]) -> str:
    """Which scorer semantics a val number has (recorded in the metric's description)."""
    key = (str(settings.get("scorer", "official")), str(settings.get("prediction_processor", "evalai")))
    return _SEMANTICS.get(key, f"scorer {key[0]}, prediction processor {key[1]}")


def estimands(records: Sequence[Record]) -> Estimands:
    """overall and the three answer types as means of per-question VQA scores, resampling images."""
    image = metadata_key("image_id")
    rows: list[tuple[str, str, float]] = []  # (id, image, score), read once per record for all four metrics
    by_type: dict[str, list[tuple[str, str, float]]] = defaultdict(list)
    for record in scored(records):
        row = (str(record["id"]), image(record), float(record["score"]))
        rows.append(row)
        by_type[meta(record, "answer_type")].append(row)
    out: dict[str, Estimand] = {"overall": mean_estimand("overall", rows, 100.0, "image", binary=False)}
    for answer_type in ANSWER_TYPES:
        if by_type.get(answer_type):
            out[answer_type] = mean_estimand(answer_type, by_type[answer_type], 100.0, "image", binary=False)
    return Estimands(out)


def lmms_eval_submission_answer(text: str) -> str:
    """The answer lmms-eval's ``vqav2_test`` writes for a generation (punctuation + digit/article only)."""
    return evalai_steps(clean_whitespace(text.strip()))


_SUBMISSION: dict[str, Callable[[str], str]] = {"evalai": evalai_answer, "lmms-eval": lmms_eval_submission_answer}


def submission_answer(text: str, settings: Mapping[str, Any] | None) -> str:
    """The answer a protocol uploads (``submission_processor``): EvalAI-processed (llava15) or lmms-eval's."""
    return _choice(settings or {}, "submission_processor", _SUBMISSION, "evalai")(text)


def score_test_dev(
    samples: Sequence[Sample],
    responses: Mapping[str, Response],
    settings: Mapping[str, Any] | None,
    name: str,
    version: str,
) -> TaskResult:
    """No metrics: list each answer as it would be uploaded, count missing ones, say where to submit."""
    answers = collect_answers(samples, responses)
    per_sample = [
        SampleScore(sample_id=s.id, parsed=submission_answer(text, settings), detail={"raw": text})
        for s, text in zip(samples, answers.texts)
    ]
    notes = [
        "VQAv2 test-dev answers are private: there is no local score. Upload the submission file "
        f"(harness export vqav2, vqav2_test-dev_submission.json) to EvalAI challenge 830 ({EVALAI_CHALLENGE}); "
        "for a local check use the vqav2_val task."
    ]
    notes.extend(answers.missing_note(len(samples), "empty answers in the submission"))
    return task_result((name, version, ()), {}, per_sample, answers.counts, notes)


@dataclass
class Submission:
    """The upload: one {question_id, answer} per test2015 line, in file order, and what was left out."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    n_answered: int = 0  # test2015 questions with an answer
    unknown_ids: list[str] = field(default_factory=list)  # answered ids not in test2015 (dropped, as LLaVA does)


def build_submission(test2015: Path, answers: Mapping[str, str]) -> Submission:
    """LLaVA's ``convert_vqav2_for_submission.py`` on answers keyed by str(question_id).

    Every line of ``test2015`` (LLaVA's ``llava_vqav2_mscoco_test2015.jsonl``) gives one entry, in file
    order: the EvalAI-processed answer when there is one, else ``""``. Answers whose id is not in the
    file do not appear (LLaVA's script ignores them without a word); they are returned for a warning.
    """
    out = Submission()
    seen: set[str] = set()
    for lineno, rec in iter_jsonl(test2015):
        require_fields(rec, ("question_id",), f"{test2015}:{lineno}")
        qid = rec["question_id"]
        key = str(qid)
        seen.add(key)
        if key in answers:
            out.entries.append({"question_id": qid, "answer": evalai_answer(answers[key])})
            out.n_answered += 1
        else:
            out.entries.append({"question_id": qid, "answer": ""})
    out.unknown_ids = [key for key in answers if key not in seen]
    return out


def write_submission(
    samples: Sequence[Sample], responses: Mapping[str, Response], test2015: Path, output: Path
) -> tuple[Path, Submission]:
    """Write the submission JSON array for the answered samples; warn about answers it had to leave out."""
    answers = {
        str(s.metadata["question_id"]): responses[s.id].text for s in samples if s.id in responses
    }
    submission = build_submission(test2015, answers)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(submission.entries), encoding="utf-8")
    if submission.unknown_ids:
        shown = ", ".join(submission.unknown_ids[:5])
        warnings.warn(
            f"{len(submission.unknown_ids)} answered question(s) are not in {test2015} and are not in the "
            f"submission (LLaVA's converter drops them too): {shown}",
            stacklevel=2,
        )
    return output, submission
