"""Image-blind baselines for the demo benchmarks, scored by the harness's own scorers.

    python bench/demo_baselines.py RUN_DIR

RUN_DIR is a run of demo tasks (``harness run --tasks gqa,mme,vqav2_val,textvqa,scienceqa,mmbench``); its
samples logs supply the questions. For each task the run's headline metrics are printed next to answer
strategies that never look at the image, each scored through ``harness score``'s code path:

- ``yes``: always "Yes";
- ``prior``: the most frequent answer to questions with the same opening (first three words) in the demo
  model's training data (``training.demo_data``, train-split scenes): what a model learns without looking;
- ``ocr``: TextVQA's first reference OCR token, lower-cased;
- ``random``: a uniformly random option letter, mean over 100 seeds (choice tasks).
"""

from __future__ import annotations

import json
import random
import re
import sys
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.run.score_answers import ScoreOptions, score_answers

HEADLINES = {"mme": ("perception", "cognition")}
CHOICE_TASKS = ("scienceqa", "mmbench")
Strategy = Callable[[dict[str, Any]], str]


def _opening(record: dict[str, Any]) -> str:
    return " ".join(str(record["question"]).split()[:3]).lower()


def prior_strategy(n_scenes: int = 2000) -> Strategy:
    from training import demo_data

    by_opening: dict[str, Counter[str]] = defaultdict(Counter)
    with tempfile.TemporaryDirectory() as tmp:
        records = demo_data.make_records(0, n_scenes, Path(tmp))
    for record in records:
        turns = record["conversations"]
        for human, gpt in zip(turns[::2], turns[1::2], strict=True):
            question = {"question": str(human["value"]).removeprefix("<image>\n")}
            by_opening[_opening(question)][str(gpt["value"])] += 1
    fallback = Counter(a for c in by_opening.values() for a in c.elements()).most_common(1)[0][0]
    return lambda r: by_opening[_opening(r)].most_common(1)[0][0] if _opening(r) in by_opening else fallback


def ocr_strategy(record: dict[str, Any]) -> str:
    tokens = record.get("metadata", {}).get("ocr_tokens") or [""]
    return str(tokens[0]).lower()


def letters(record: dict[str, Any]) -> list[str]:
    return re.findall(r"^([A-E])\. ", str(record["request"]["prompt"]), flags=re.MULTILINE) or ["A"]


def score(task: str, root: str, records: list[dict[str, Any]], strategy: Strategy) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{task}.jsonl"
        with path.open("w") as out:
            for r in records:
                copy = dict(r, response={**(r.get("response") or {}), "text": strategy(r), "error": None})
                out.write(json.dumps(copy) + "\n")
        result = score_answers(ScoreOptions(task=task, answers=str(path), data_root=root)).result
    return headline(task, {k: m.value for k, m in result.metrics.items()})


def headline(task: str, metrics: dict[str, float]) -> dict[str, float]:
    names = HEADLINES.get(task, (next(iter(metrics)),))
    return {n: round(float(metrics[n]), 2) for n in names}


def main(run_dir: Path) -> None:
    results = json.loads((run_dir / "results.json").read_text())
    root = results["data"]["root"]
    prior = prior_strategy()
    for task, entry in results["tasks"].items():
        records = [json.loads(line) for line in (run_dir / "samples" / f"{task}.jsonl").open()]
        model = headline(task, {k: (v["value"] if isinstance(v, dict) else v) for k, v in entry["metrics"].items()})
        rows = {"model": model, "yes": score(task, root, records, lambda r: "Yes")}
        if task in CHOICE_TASKS:
            runs = []
            for seed in range(100):
                rng = random.Random(seed)
                runs.append(score(task, root, records, lambda r, rng=rng: rng.choice(letters(r))))
            rows["random"] = {k: round(sum(x[k] for x in runs) / len(runs), 2) for k in runs[0]}
        else:
            rows["prior"] = score(task, root, records, prior)
        if task == "textvqa":
            rows["ocr"] = score(task, root, records, ocr_strategy)
        print(f"{task:10s} " + "  ".join(f"{name} {vals}" for name, vals in rows.items()), flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python bench/demo_baselines.py RUN_DIR")
    main(Path(sys.argv[1]))
