"""POPE scoring: LLaVA's ``llava/eval/eval_pope.py`` (official) and lmms-eval's ``pope`` task.

Official (haotian-liu/LLaVA, the script as released in ce1aa08 "Release evaluation scripts",
2023-10-11, unchanged since; it produced the LLaVA-1.5 numbers), per split (label file
``coco_pope_<split>.json``):

1. the split's answers are the answers-file lines whose question (looked up by ``question_id`` in
   the question file) has that ``category``, in the answers file's order;
2. an answer is cut at its first ``.`` (only the first sentence is kept), its commas deleted, and it
   is split on single spaces; it means "no" when one of the words is exactly ``No``, ``no`` or
   ``not``, and "yes" otherwise (so ``NO``, ``Nope``, ``no\\n...`` and the empty answer are "yes");
3. labels are read from the label file in line order; a label that is exactly ``no`` is negative,
   anything else positive;
4. answers and labels are paired by POSITION (``zip``), never by ``question_id``: the k-th answer of
   the split is compared with the k-th label line; a missing answer shifts every later pairing, and
   ``zip`` stops at the shorter list;
5. ``yes_ratio`` is the share of "yes" among all the split's answers; precision, recall, F1 and
   accuracy come from the TP / FP / TN / FN counts of the pairs (the script divides by zero when a
   split has no "yes" prediction or no positive label).

The script prints the counts, the five values with full precision, then ``F1, Acc, Precision,
Recall, yes_ratio`` with 3 decimals. Papers report the F1 averaged over the three splits, in percent.

lmms-eval 0.7.3 (``tasks/pope``): the whole test set pooled (no per-split numbers), answer lower-cased
and stripped, compared with the label exactly: accuracy = exact matches; TP / FP count predictions
that are exactly ``yes``, FN those exactly ``no`` (any other text is neither), a zero denominator
gives 0; its ``yes_ratio`` is the share of ``yes`` LABELS, not of predictions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from harness.results.records import Record, detail, scored
from harness.stats.analytic import make_metric
from harness.stats.bootstrap import ColumnSums, Combine, Estimand, Estimands, Totals, ratio
from harness.types import Metric, Response, Sample, SampleScore, TaskResult
from tasks.common.answers import Counts, collect_answers
from tasks.common.scoring import Header, right_or_wrong, task_result

SPLITS = ("adversarial", "popular", "random")
NEGATIVE_WORDS = ("No", "not", "no")
RATES = ("f1", "accuracy", "precision", "recall", "yes_ratio")


def official_label(answer: str) -> str:
    """eval_pope.py's reading of one answer: "no" or "yes"."""
    text = answer
    if text.find(".") != -1:
        text = text.split(".")[0]
    words = text.replace(",", "").split(" ")
    return "no" if any(word in words for word in NEGATIVE_WORDS) else "yes"


def positive_label(label: str) -> bool:
    """eval_pope.py reads a label as negative only when it is exactly ``no``."""
    return label != "no"


@dataclass
class Confusion:
    """Counts of one split (or of the pooled set): the pairs' TP / FP / TN / FN and the yes-ratio's parts."""

    tp: int = 0
    fp: int = 0
    tn: int = 0
    fn: int = 0
    yes: int = 0  # answers counted as "yes" in the yes-ratio
    ratio_n: int = 0  # the yes-ratio's denominator

    def rates(self) -> dict[str, float | None]:
        """Precision, recall, F1, accuracy and yes-ratio as fractions; None where a denominator is 0."""
        precision = self.tp / (self.tp + self.fp) if self.tp + self.fp else None
        recall = self.tp / (self.tp + self.fn) if self.tp + self.fn else None
        f1 = None
        if precision is not None and recall is not None and precision + recall:
            f1 = 2 * precision * recall / (precision + recall)
        pairs = self.tp + self.tn + self.fp + self.fn
        return {
            "f1": f1,
            "accuracy": (self.tp + self.tn) / pairs if pairs else None,
            "precision": precision,
            "recall": recall,
            "yes_ratio": self.yes / self.ratio_n if self.ratio_n else None,
        }


def _percent(value: float | None, n: int, description: str) -> Metric:
    return make_metric(100.0 * (value or 0.0), None, n, description)


def _flags(pred_yes: bool, label_yes: bool | None) -> dict[str, int]:
    """Per-sample confusion flags (all 0 for an answer that was paired with no label)."""
    if label_yes is None:
        return {"tp": 0, "fp": 0, "tn": 0, "fn": 0}
    return {
        "tp": int(pred_yes and label_yes),
        "fp": int(pred_yes and not label_yes),
        "tn": int(not pred_yes and not label_yes),
        "fn": int(not pred_yes and label_yes),
    }


def _add(counts: Confusion, flags: Mapping[str, int], yes: int, in_ratio: int) -> None:
    counts.tp += flags["tp"]
    counts.fp += flags["fp"]
    counts.tn += flags["tn"]
    counts.fn += flags["fn"]
    counts.yes += yes
    counts.ratio_n += in_ratio


def split_labels(samples: Sequence[Sample]) -> dict[str, list[str]]:
    """Each split's labels in label-file order (the samples' ``label_index``), as eval_pope.py reads them."""
    by_split: dict[str, list[tuple[int, str]]] = {}
    for s in samples:
        by_split.setdefault(s.metadata["category"], []).append((int(s.metadata["label_index"]), str(s.target)))
    return {split: [label for _, label in sorted(rows)] for split, rows in by_split.items()}


def score_official(samples: Sequence[Sample], responses: Mapping[str, Response], header: Header) -> TaskResult:
    """eval_pope.py: per split, the answered samples in the given order (``harness score``: the answers
    file's) paired by position with the split's labels; F1 and the rest per split, their means overall."""
    labels = split_labels(samples)
    answers = collect_answers(samples, responses)
    counts = {split: Confusion() for split in labels}
    position = dict.fromkeys(labels, 0)
    per_sample: list[SampleScore] = []
    n_unpaired = 0
    for sample, text in zip(samples, answers.texts):
        split = sample.metadata["category"]
        if sample.id not in responses:
            continue  # eval_pope.py walks the answers file: an unanswered question is not there
        k = position[split]
        position[split] += 1
        label = labels[split][k] if k < len(labels[split]) else None
        n_unpaired += label is None
        pred = official_label(text)
        label_yes = None if label is None else positive_label(label)
        flags = _flags(pred == "yes", label_yes)
        _add(counts[split], flags, int(pred == "yes"), 1)
        detail = {"split": split, "compared_label": label, **flags, "yes": int(pred == "yes"), "in_ratio": 1}
        correct = label_yes is not None and (pred == "yes") == label_yes
        per_sample.append(right_or_wrong(sample.id, pred, correct, detail))
    notes: list[str] = []
    if answers.n_missing:
        notes.append(
            f"{answers.n_missing} of {len(samples)} questions have no answer; left out, and (as eval_pope.py pairs "
            "answers with label lines by position) every later answer of that split is compared with a shifted label"
        )
    if n_unpaired:
        notes.append(f"{n_unpaired} answers found no label line (zip stops at the shorter list)")
    metrics, breakdowns = _split_metrics(counts, notes)
    return task_result(header, metrics, per_sample, Counts(len(samples), answers.n_errors, answers.n_missing),
                       notes, breakdowns)  # fmt: skip


def _split_metrics(
    counts: Mapping[str, Confusion], notes: list[str]
) -> tuple[dict[str, Metric], dict[str, dict[str, Metric]]]:
    """Per-split metrics (``<split>_<rate>``), their means over the splits present, and breakdowns by split."""
    present = [split for split in SPLITS if split in counts] + [s for s in counts if s not in SPLITS]
    metrics: dict[str, Metric] = {}
    breakdowns: dict[str, dict[str, Metric]] = {rate: {} for rate in RATES}
    per_split: dict[str, dict[str, float | None]] = {}
    for split in present:
        c = counts[split]
        per_split[split] = c.rates()
        n = c.tp + c.fp + c.tn + c.fn
        for rate, value in per_split[split].items():
            if value is None:
                notes.append(f"{split}: {rate} has a zero denominator (eval_pope.py would fail); reported as 0")
            metric = _percent(value, c.ratio_n if rate == "yes_ratio" else n, f"{split} {rate}, percent")
            breakdowns[rate][split] = metric
            metrics[f"{split}_{rate}"] = metric
    means: dict[str, Metric] = {}
    for rate in RATES:
        values = [per_split[split][rate] or 0.0 for split in present]
        value = sum(values) / len(values) if values else 0.0
        n = sum(breakdowns[rate][split].n for split in present)
        means[rate] = make_metric(100.0 * value, None, n, f"mean over {len(present)} splits of the {rate}, percent")
    if not present:
        notes.append("no answered question: every metric reported as 0")
    return {**means, **metrics}, breakdowns


def score_lmms_eval(samples: Sequence[Sample], responses: Mapping[str, Response], header: Header) -> TaskResult:
    """lmms-eval's ``pope``: exact lower-cased matches over the pooled set, its precision / recall / F1 rules
    and its label yes-ratio; a missing answer is the empty prediction."""
    answers = collect_answers(samples, responses)
    pooled = Confusion()
    by_split: dict[str, Confusion] = {}
    per_sample: list[SampleScore] = []
    n_other = 0
    for sample, text in zip(samples, answers.texts):
        pred = text.strip().lower().strip()
        gt = str(sample.target).lower().strip()
        flags = {
            "tp": int(gt == "yes" and pred == "yes"),
            "fp": int(gt == "no" and pred == "yes"),
            "fn": int(gt == "yes" and pred == "no"),
            "tn": int(gt == "no" and pred == "no"),
        }
        n_other += pred not in ("yes", "no")
        for counts in (pooled, by_split.setdefault(sample.metadata["category"], Confusion())):
            _add(counts, flags, int(gt == "yes"), int(gt in ("yes", "no")))
        detail = {"split": sample.metadata["category"], "gt": gt, **flags, "yes": int(gt == "yes"), "in_ratio": 1,
                  "pooled": True}  # fmt: skip
        per_sample.append(right_or_wrong(sample.id, pred, pred == gt, detail, pred not in ("yes", "no")))
    accuracy = sum(s.score for s in per_sample) / len(per_sample) if per_sample else 0.0
    rates = {**pooled.rates(), "accuracy": accuracy}
    n = len(per_sample)
    metrics = {rate: _percent(rates[rate], n, f"lmms-eval pope_{rate}, pooled over the splits, percent")
               for rate in RATES}  # fmt: skip
    metrics["f1"] = _percent(rates["f1"], n, "lmms-eval pope_f1_score, pooled over the splits, percent")
    breakdowns = {"f1": {split: _percent(c.rates()["f1"], c.ratio_n, f"{split} F1 (lmms-eval rules), percent")
                         for split, c in by_split.items()}}  # fmt: skip
    notes = ["lmms-eval scoring: exact yes/no matches pooled over the splits; yes_ratio is the share of yes labels"]
    if n_other:
        notes.append(f"{n_other} answers are neither 'yes' nor 'no' after lower-casing and stripping (wrong)")
    notes.extend(answers.missing_note(len(samples), "empty answers (wrong)"))
    return task_result(header, metrics, per_sample, answers.counts, notes, breakdowns)


# ---------------------------------------------------------------------------------------------
# Statistics


def _rate(rate: str, t: Totals, prefix: str) -> np.ndarray:
    tp, fp, fn = (t[f"{prefix}{k}"] for k in ("tp", "fp", "fn"))
    if rate == "precision":
        return ratio(tp, tp + fp)
    if rate == "recall":
        return ratio(tp, tp + fn)
    if rate == "f1":
        p, r = ratio(tp, tp + fp), ratio(tp, tp + fn)
        return ratio(2 * p * r, p + r)
    if rate == "accuracy":
        return ratio(t[f"{prefix}correct"], t[f"{prefix}pairs"])
    return ratio(t[f"{prefix}yes"], t[f"{prefix}in_ratio"])


def _combine(rate: str, prefixes: Sequence[str]) -> Combine:
    def combine(t: Totals) -> np.ndarray:
        return 100.0 * sum(_rate(rate, t, p) for p in prefixes) / len(prefixes)

    return combine


def estimands(records: Sequence[Record]) -> Estimands:
    """The reported rates recomputed from per-sample confusion flags: per split and their mean over the splits
    (official), or pooled (lmms-eval). Questions are resampled within their split."""
    sums = ColumnSums()
    strata: dict[str, str] = {}
    splits: list[str] = []
    pooled = False
    for r in scored(records):
        split = str(detail(r, "split", ""))
        pooled = pooled or bool(detail(r, "pooled", False))
        if split not in splits:
            splits.append(split)
        key = str(r["id"])
        strata[key] = split
        flags = {k: float(detail(r, k, 0)) for k in ("tp", "fp", "fn", "tn", "yes", "in_ratio")}
        flags["pairs"] = flags["tp"] + flags["fp"] + flags["fn"] + flags["tn"]
        flags["correct"] = float(r["score"]) if pooled else flags["tp"] + flags["tn"]
        if pooled:
            flags["pairs"] = 1.0
        for prefix in ("", f"{split}:"):
            for name, value in flags.items():
                sums.add(key, f"{prefix}{name}", value)
    columns = sums.frozen()
    out: dict[str, Estimand] = {}
    if not splits:
        return Estimands()
    what = "pooled" if pooled else "mean over splits"
    for rate in RATES:
        prefixes = [""] if pooled else [f"{s}:" for s in splits]
        what_rate = f"{rate} from confusion counts, {what}"
        out[rate] = Estimand(rate, _combine(rate, prefixes), columns, "question", what_rate)
        if not pooled:
            for split in splits:
                out[f"{split}_{rate}"] = Estimand(f"{split}_{rate}", _combine(rate, [f"{split}:"]), columns, "question",
                                                  f"{split} {rate} from confusion counts")  # fmt: skip
    return Estimands(out, strata=strata, stratum_name="split")
