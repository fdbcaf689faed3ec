"""SEED-Bench (image part) scoring: LLaVA's ``scripts/convert_seed_for_submission.py`` and lmms-eval's ``seedbench``.

Official (haotian-liu/LLaVA, the script as released in ce1aa08 "Release evaluation scripts",
2023-10-11, unchanged since; it produced the LLaVA-1.5 SEED-Bench numbers):

1. the answers file becomes a dict ``question_id -> line`` keyed by the raw JSON value (a later line
   replaces an earlier one);
2. for every question of ``SEED-Bench.json`` with ``data_type == "image"`` (the ``image accuracy``
   line), the answer is looked up under ``int(question_id)`` (under the text id when it is not a
   number), so an answer whose ``question_id`` is the string ``"101669"`` is not found;
3. a question without an answer counts as wrong; an answer is right only when its ``text`` EQUALS the
   answer letter: no letter is extracted, nothing stripped or case-folded (``A`` right; ``A.``,
   ``a``, `` A`` and ``A. Two`` wrong);
4. accuracy = right / questions x 100, printed with 2 decimals, per question type (named by
   ``question_type`` of SEED-Bench.json; printed over image and video questions together, which for
   the image types 1-9 is the image-only value) and overall.

Crashes of the script that we do not copy: a question type with no right answer and no missing one
(its count is never set: KeyError), and, when it writes the upload file, any question of the
annotation file without an answer (video ones included).

lmms-eval 0.7.3 (``seedbench``, metric ``seed_image``): the answer stripped, cut to its first
character when longer, compared with the letter ignoring case (``A. Two``, ``a`` and ``Apple`` are
right); the mean over the image documents.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from harness.results.records import Record, mean_of, scored
from harness.stats.analytic import mean_metric
from harness.stats.bootstrap import Estimands
from harness.types import Metric, Response, Sample, SampleScore, TaskResult
from tasks.common.answers import collect_answers
from tasks.common.scoring import Header, right_or_wrong, task_result


def lookup_key(question_id: object) -> object:
    """The key the script looks an answer up under: ``int(question_id)``, or the id itself when that fails."""
    try:
        return int(question_id)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return question_id


def lmms_eval_letter(text: str) -> str:
    """``seed_process_result``: the stripped answer, cut to its first character when longer."""
    pred = text.strip()
    return pred[0] if len(pred) > 1 else pred


def _by_type(samples: Sequence[Sample], per_sample: Sequence[SampleScore], what: str) -> dict[str, Metric]:
    """Accuracy per question type (named as SEED-Bench.json names it), in question-type id order."""
    values: dict[tuple[int, str], list[float]] = {}
    for sample, scored_sample in zip(samples, per_sample):
        key = (int(sample.metadata["question_type_id"]), str(sample.metadata["question_type"]))
        values.setdefault(key, []).append(scored_sample.score or 0.0)
    return {name: mean_metric(v, description=f"{what}, percent") for (_, name), v in sorted(values.items())}


def score_official(samples: Sequence[Sample], responses: Mapping[str, Response], header: Header) -> TaskResult:
    """convert_seed_for_submission.py's image accuracy: exact equality with the letter; unanswered = wrong."""
    answers = collect_answers(samples, responses)
    per_sample: list[SampleScore] = []
    for sample, text in zip(samples, answers.texts):
        missing = sample.id not in responses
        correct = not missing and text == sample.target
        letter = None if missing else text
        per_sample.append(right_or_wrong(sample.id, letter, correct, {"missing": missing}))
    values = [s.score or 0.0 for s in per_sample]
    metrics = {"accuracy": mean_metric(values, description="percent of image questions answered with the letter")}
    by_type = _by_type(samples, per_sample, "image questions of the type answered with exactly the letter")
    notes = answers.missing_note(len(samples), "wrong (as convert_seed_for_submission.py counts them)")
    crash = [name for name, m in by_type.items() if m.value == 0.0]
    if crash and not answers.n_missing:
        notes.append(f"question type(s) {', '.join(crash)}: no right answer; the official script fails there "
                     "(KeyError), reported as 0")  # fmt: skip
    return task_result(header, metrics, per_sample, answers.counts, notes, {"question_type": by_type})


def score_lmms_eval(samples: Sequence[Sample], responses: Mapping[str, Response], header: Header) -> TaskResult:
    """lmms-eval's seed_image: the first character of the stripped answer against the letter, ignoring case."""
    answers = collect_answers(samples, responses)
    per_sample: list[SampleScore] = []
    for sample, text in zip(samples, answers.texts):
        pred = lmms_eval_letter(text)
        correct = pred.lower().strip() == str(sample.target).lower().strip()
        per_sample.append(right_or_wrong(sample.id, pred, correct, {"missing": sample.id not in responses}))
    values = [s.score or 0.0 for s in per_sample]
    metrics = {"accuracy": mean_metric(values, description="lmms-eval seed_image x 100")}
    by_type = _by_type(samples, per_sample, "lmms-eval rule")
    notes = answers.missing_note(len(samples), "empty answers (wrong)")
    return task_result(header, metrics, per_sample, answers.counts, notes, {"question_type": by_type})


def estimands(records: Sequence[Record]) -> Estimands:
    """accuracy: the mean of independent questions."""
    return Estimands({"accuracy": mean_of("accuracy", scored(records))})
