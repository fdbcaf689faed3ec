"""TextVQA val scoring: LLaVA's ``eval_textvqa.py`` + ``TextVQAAccuracyEvaluator`` (m4c_evaluator.py).

``eval_textvqa.py`` matches each answer to its annotation by (image_id, lower-cased question), the
question being recovered from the prompt (:func:`recover_question`); annotations are put in a dict by
that pair, so when two share it the later one wins. Each prediction and all ten human answers go
through ``EvalAIAnswerProcessor`` (always; no uniform-answers shortcut); the score is the leave-one-out
VQA accuracy when the processed prediction equals one of the processed answers, else 0; accuracy =
100 x the mean (printed by the script with 2 decimals; reported here unrounded).

lmms-eval's ``textvqa_process_results`` scores the same way (its framework strips the generation
first, which the EvalAI processor does anyway); only its prompt differs (see ``tasks.textvqa``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from harness.results.records import Record, mean_of, metadata_key, scored
from harness.stats.analytic import mean_metric
from harness.stats.bootstrap import Estimands
from harness.types import Sample, SampleScore, TaskResult
from tasks.common.answers import Counts, answered_only, collect_answers
from tasks.common.scoring import Responses, partial_credit, task_result
from tasks.common.vqa_eval import textvqa_score

OCR_MARKER = "Reference OCR token: "
_OLD_FORM = re.compile(r"Question: (.*?) Short answer:", re.DOTALL)


def recover_question(prompt: str) -> str:
    """The lower-cased question ``eval_textvqa.py``'s ``prompt_processor`` reads from a prompt.

    - starts with ``OCR tokens: ``: the text between ``Question: `` and `` Short answer:``;
    - contains ``Reference OCR token: `` and has three lines: the second line when the prompt starts
      with ``Reference OCR token:``, else the first;
    - two lines: the first;
    - anything else: a ValueError (the script's ``assert False``).
    """
    lines = prompt.split("\n")
    if prompt.startswith("OCR tokens: "):
        match = _OLD_FORM.search(prompt)
        if match is None:
            raise ValueError("prompt starts with 'OCR tokens: ' but has no 'Question: ... Short answer:'")
        question = match.group(1)
    elif OCR_MARKER in prompt and len(lines) == 3:
        question = lines[1] if prompt.startswith("Reference OCR token:") else lines[0]
    elif len(lines) == 2:
        question = lines[0]
    else:
        raise ValueError(
            f"prompt has {len(lines)} line(s) and is not a form eval_textvqa.py reads "
            "(question / OCR line / suffix, question / suffix, or 'OCR tokens: ... Question: ... Short answer:')"
        )
    return question.lower()


def ocr_tokens(prompt: str) -> list[str] | None:
    """The tokens of a prompt's ``Reference OCR token: a, b, c`` line (None when there is no such line)."""
    for line in prompt.split("\n"):
        if line.startswith(OCR_MARKER):
            rest = line[len(OCR_MARKER) :]
            return rest.split(", ") if rest else []
    return None


def score_textvqa(
    samples: Sequence[Sample], responses: Responses, name: str, version: str, headline: Sequence[str] = ("accuracy",)
) -> TaskResult:
    """Score samples (targets: the ten answers of the matched annotation) as LLaVA's TextVQA pipeline does.

    eval_textvqa.py iterates over the answers file, so unanswered questions are left out of the score
    (counted in ``n_missing``), not scored as wrong.
    """
    samples, n_missing, notes = answered_only(samples, responses, "eval_textvqa.py")
    answers = collect_answers(samples, responses)
    values: list[float] = []
    per_sample: list[SampleScore] = []
    for sample, text in zip(samples, answers.texts):
        scored = textvqa_score(text, sample.target)
        values.append(scored.accuracy)
        per_sample.append(
            partial_credit(sample.id, scored.prediction, scored.accuracy, {"answers": list(scored.answers)})
        )
    metrics = {
        "accuracy": mean_metric(
            values,
            [s.metadata["image_id"] for s in samples],
            description="VQA accuracy after EvalAI processing (TextVQAAccuracyEvaluator), percent",
        )
    }
    shared = sum(1 for s in samples if s.metadata.get("annotation_shared"))
    if shared:
        notes.append(
            f"{shared} question(s) match an (image, question) pair that several annotations share; "
            "the later annotation was used, as eval_textvqa.py's dict does"
        )
    counts = Counts(len(samples), answers.n_errors, n_missing)
    return task_result((name, version, headline), metrics, per_sample, counts, notes)


def estimands(records: Sequence[Record]) -> Estimands:
    """accuracy as a mean of per-question VQA scores, resampling images (several questions share one)."""
    accuracy = mean_of("accuracy", scored(records), metadata_key("image_id"), "image", binary=False)
    return Estimands({"accuracy": accuracy})
