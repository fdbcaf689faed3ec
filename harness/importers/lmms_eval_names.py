"""lmms-eval task and metric names in ours, with the unit conversion where the meaning matches.

lmms-eval reports fractions for ``exact_match`` (we report percent) and already-percent or point values
for its judge and MME scores. Metrics without a match keep lmms-eval's name and value.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricMap:
    """One lmms-eval metric that means one of ours: our name and the factor to our units."""

    ours: str
    scale: float = 1.0
    headline: bool = True  # one of our task's headline metrics


_EXACT_PERCENT = MetricMap("accuracy", 100.0)

# lmms-eval task -> (our task, {lmms-eval metric (without filter) -> our metric})
TASKS: dict[str, tuple[str, dict[str, MetricMap]]] = {
    "gqa": ("gqa", {"exact_match": _EXACT_PERCENT}),
    "mme": (
        "mme",
        {
            "mme_perception_score": MetricMap("perception"),
            "mme_percetion_score": MetricMap("perception"),  # lmms-eval's spelling before 0.7
            "mme_cognition_score": MetricMap("cognition"),
        },
    ),
    "vqav2_val": ("vqav2_val", {"exact_match": MetricMap("overall", 100.0)}),
    "vqav2_test": ("vqav2", {}),
    "vqav2": ("vqav2", {}),
    "textvqa_val": ("textvqa", {"exact_match": _EXACT_PERCENT}),
    "scienceqa_img": ("scienceqa", {"exact_match": MetricMap("img_accuracy", 100.0)}),
    "mmbench_en_dev": ("mmbench", {"gpt_eval_score": MetricMap("circular")}),
    "mmvet": ("mmvet", {"gpt_eval_score": MetricMap("total")}),
    "llava_in_the_wild": (
        "llava_bench",
        {
            "gpt_eval_llava_all": MetricMap("relative"),
            "gpt_eval_llava_conv": MetricMap("relative_conv", headline=False),
            "gpt_eval_llava_detail": MetricMap("relative_detail", headline=False),
            "gpt_eval_llava_complex": MetricMap("relative_complex", headline=False),
        },
    ),
    "pope": (
        "pope",
        {
            "pope_f1_score": MetricMap("f1", 100.0),
            "pope_accuracy": MetricMap("accuracy", 100.0, headline=False),
            "pope_precision": MetricMap("precision", 100.0, headline=False),
            "pope_recall": MetricMap("recall", 100.0, headline=False),
            "pope_yes_ratio": MetricMap("yes_ratio", 100.0, headline=False),
        },
    ),
    "seedbench": ("seed_bench", {"seed_image": MetricMap("accuracy", 100.0)}),
    "vizwiz_vqa_val": ("vizwiz_val", {"exact_match": MetricMap("overall", 100.0)}),
    "vizwiz_vqa_test": ("vizwiz", {}),
    "mmbench_cn_dev": ("mmbench_cn", {"gpt_eval_score": MetricMap("circular")}),
    "mmmu_val": ("mmmu", {"mmmu_acc": _EXACT_PERCENT}),
}


def our_task(name: str) -> tuple[str, bool]:
    """(our task name, whether it is one of ours); unknown tasks keep their own name."""
    if name in TASKS:
        return TASKS[name][0], True
    return name, False


def metric_map(task: str) -> dict[str, MetricMap]:
    """The metric correspondences of an lmms-eval task (empty for unknown tasks)."""
    return TASKS.get(task, ("", {}))[1]


def split_key(key: str) -> tuple[str, str]:
    """``"exact_match,none"`` -> ("exact_match", "none"); a key without a filter gets "none"."""
    metric, _, filter_name = key.partition(",")
    return metric, filter_name or "none"
