"""ScienceQA-IMG scoring: LLaVA's ``eval_science_qa.py`` (official) and lmms-eval's ``scienceqa_img``.

Official (haotian-liu/LLaVA @ c121f04, ``--split test``, options A-E), for every test problem:

1. the prediction text, or ``FAILED`` with prompt ``Unknown`` when the problem has no answer;
2. a letter: the text is exactly one of ``A B C D E``; else it has at least 3 characters, the
   first one of ``A``-``E`` and the next two ``". "``; else the regex ``The answer is ([A-Z]).``
   matches exactly once (case-sensitive; its last ``.`` matches any character but a newline);
   else ``FAILED``. Nothing is stripped or lower-cased;
3. the index of that letter among the first ``len(choices)`` options, else -1; correct iff it
   equals the problem's ``answer``;
4. ``Accuracy`` over every test problem, ``IMG-Accuracy`` over the results whose prompt contains
   ``<image>``: a problem with no answer counts against ``Accuracy`` but, its prompt being
   ``Unknown``, leaves the ``IMG-Accuracy`` denominator.

lmms-eval (``scienceqa_img``): image problems only; the generation is stripped; correct iff the
text equals the answer letter ignoring case, or its first character is upper-case, its second is
``.`` and the first is the answer letter. So ``b``, ``B.``, `` B`` are right there but ``FAILED``
officially, and ``The answer is B.`` is right officially but wrong there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from harness.results.records import Record, detail, mean_of, scored
from harness.stats.analytic import mean_metric
from harness.stats.bootstrap import Estimands
from harness.types import Response, Sample, SampleScore, TaskResult
from tasks.common.answers import Counts
from tasks.common.scoring import Header, right_or_wrong, task_result

OPTIONS = ("A", "B", "C", "D", "E")
FAILED = "FAILED"
UNKNOWN_PROMPT = "Unknown"
ANSWER_PATTERN = re.compile(r"The answer is ([A-Z]).")


def parse_letter(text: str) -> str:
    """The letter eval_science_qa.py reads from a prediction (possibly beyond E), or ``FAILED``."""
    if text in OPTIONS:
        return text
    if len(text) >= 3 and text[0] in OPTIONS and text[1:3] == ". ":
        return text[0]
    found = ANSWER_PATTERN.findall(text)
    return found[0] if len(found) == 1 else FAILED


def option_index(letter: str, n_choices: int) -> int:
    """``get_pred_idx``: the letter's position among the first ``n_choices`` options, else -1."""
    valid = OPTIONS[:n_choices]
    return valid.index(letter) if letter in valid else -1


def lmms_eval_letter(text: str) -> str | None:
    """The letter lmms-eval's ScienceQA rule reads from a generation, or None.

    After stripping: a one-character answer is that letter in any case; a longer one counts only
    when its first character is upper-case and its second is ``.``.
    """
    pred = text.strip()
    if len(pred) == 1:
        return pred.upper()
    if len(pred) >= 2 and pred[0].isupper() and pred[1] == ".":
        return pred[0]
    return None


def lmms_eval_correct(text: str, target: str) -> bool:
    """lmms-eval's ``sqa_process_results``: whole answer equal to the letter ignoring case, or ``X.`` prefix."""
    pred = text.strip()
    if pred.lower() == target.lower():
        return True
    return len(pred) >= 2 and pred[0].isupper() and pred[1] == "." and pred[0].lower() == target.lower()


def score_official(samples: Sequence[Sample], responses: Mapping[str, Response], header: Header) -> TaskResult:
    """eval_science_qa.py over the given samples (those outside the test split are not scored)."""
    per_sample: list[SampleScore] = []
    all_values: list[float] = []
    img_values: list[float] = []
    n_missing = n_errors = n_outside = 0
    for sample in samples:
        meta = sample.metadata
        if not meta.get("in_test_split", True):
            n_outside += 1
            continue
        response = responses.get(sample.id)
        if response is None:
            n_missing += 1
            text, multimodal = FAILED, "<image>" in UNKNOWN_PROMPT
        else:
            n_errors += response.error is not None
            text, multimodal = response.text, bool(sample.images)
        letter = parse_letter(text)
        index = option_index(letter, int(meta["n_choices"]))
        correct = index == sample.target
        value = 1.0 if correct else 0.0
        all_values.append(value)
        if multimodal:
            img_values.append(value)
        detail = {
            "index": index,
            "ground_truth": OPTIONS[sample.target],
            "is_multimodal": multimodal,
            "missing": response is None,
        }
        per_sample.append(right_or_wrong(sample.id, letter, correct, detail, response is not None and letter == FAILED))
    metrics = {
        "img_accuracy": mean_metric(img_values, description="percent correct over image problems (IMG-Accuracy)"),
        "accuracy": mean_metric(all_values, description="percent correct over all test problems (Accuracy)"),
    }
    notes: list[str] = []
    if n_missing:
        notes.append(
            f"{n_missing} of {len(all_values)} test problems have no answer: scored FAILED in accuracy "
            "and, with prompt 'Unknown', left out of img_accuracy (as eval_science_qa.py does)"
        )
    if not img_values:
        notes.append("img_accuracy: no answered image problem; reported as 0 (eval_science_qa.py would divide by 0)")
    if n_outside:
        notes.append(f"{n_outside} problems are not in pid_splits.json 'test' and were not scored")
    return task_result(header, metrics, per_sample, Counts(len(samples), n_errors, n_missing), notes)


def score_lmms_eval(samples: Sequence[Sample], responses: Mapping[str, Response], header: Header) -> TaskResult:
    """lmms-eval's scienceqa_img: exact_match averaged over the image problems."""
    per_sample: list[SampleScore] = []
    values: list[float] = []
    n_missing = n_errors = n_text_only = 0
    for sample in samples:
        if not sample.images or not sample.metadata.get("in_test_split", True):
            n_text_only += 1
            continue
        response = responses.get(sample.id)
        if response is None:
            n_missing += 1
            text = ""
        else:
            n_errors += response.error is not None
            text = response.text
        target = OPTIONS[sample.target]
        correct = lmms_eval_correct(text, target)
        letter = lmms_eval_letter(text)
        values.append(1.0 if correct else 0.0)
        detail = {"ground_truth": target, "missing": response is None}
        per_sample.append(right_or_wrong(sample.id, letter, correct, detail, response is not None and letter is None))
    metrics = {"img_accuracy": mean_metric(values, description="lmms-eval exact_match over image problems, percent")}
    notes: list[str] = []
    if n_text_only:
        notes.append(f"{n_text_only} text-only (or non-test) problems not scored: lmms-eval's ScienceQA-IMG has none")
    if n_missing:
        notes.append(f"{n_missing} of {len(values)} image problems have no answer; scored wrong")
    return task_result(header, metrics, per_sample, Counts(len(samples), n_errors, n_missing), notes)


# ---------------------------------------------------------------------------------------------
# Statistics


def estimands(records: Sequence[Record]) -> Estimands:
    """img_accuracy (the problems scored as multimodal) and accuracy (all scored problems): means of
    independent problems."""
    rows = scored(records)
    images = [r for r in rows if detail(r, "is_multimodal", True)]
    return Estimands({"img_accuracy": mean_of("img_accuracy", images), "accuracy": mean_of("accuracy", rows)})
