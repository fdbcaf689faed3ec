"""Scoring throughput at the official data sizes, against the uncached normalisers measured in the same run.

    python bench/scoring.py [--tasks vqav2_val,gqa,textvqa,mmbench,mme] [--scale 1.0] [--seed 0] [--repeats 3]
                            [--no-baseline]

Each task's demo data (its ``write_demo``) is written under a temporary folder, and its samples are
replicated with fresh ids up to the official size x ``--scale`` (VQAv2 val 214,354 questions, GQA
testdev-balanced 12,578, TextVQA val 5,000, MMBench dev 4,377 rows, MME 2,374). Answers repeat as model
answers do: one of the sample's gold answers (or a variant of it) most of the time, another sample's otherwise.

(a) ``in-process``: ``Task.score`` on the replicated samples, samples/s in CPU seconds of one call with cold
    caches (what ``harness score`` pays).
(b) ``harness score``: ``python -m harness score TASK --answers F --data-root ROOT --json`` end to end, for the
    tasks whose official files are replicated on disk (vqav2_val, gqa); others show "-".

Every timing is the best of ``--repeats`` runs, each in a fresh process (the small tasks take a tenth of a
second, where one run is mostly the machine's noise). Unless ``--no-baseline``, (a) and (b) also run with
``HARNESS_SCORING_MEMO=0`` (the normalisers and the leave-one-out accuracy uncached, as before issue 19;
``harness score`` also without the sample cache, whose first new run fills it and is printed apart),
interleaved with the new runs, and new / baseline ratios are printed. Both must give the
same headline value; a difference is printed as an error and the exit status is 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

OFFICIAL_SIZES = {"vqav2_val": 214_354, "gqa": 12_578, "textvqa": 5_000, "mmbench": 4_377, "mme": 2_374}
ON_DISK = ("vqav2_val", "gqa")  # tasks whose official files are written at full size for (b)
SEED = 0
WHOLE_COPIES = ("mme", "mmbench")  # replicated by whole copies of the demo set (the size rounds to a multiple)


def _size(task: str, scale: float) -> int:
    return max(1, round(OFFICIAL_SIZES[task] * scale))


def _demo_root(task_name: str, folder: Path, seed: int) -> Path:
    from harness.registry import get_task

    root = folder / "demo"
    get_task(task_name).write_demo(root, seed)
    return root


def _answer_for(target: Any, pool: list[Any], rng: random.Random) -> str:
    """A model-like answer: a gold answer (sometimes capitalised or with a period), else another sample's."""
    if rng.random() < 0.2 and pool:
        target = rng.choice(pool)
    if isinstance(target, list | tuple):
        target = rng.choice(list(target)) if target else ""
    text = str(target)
    roll = rng.random()
    if roll < 0.1:
        return text.capitalize()
    if roll < 0.15:
        return text + "."
    return text


def _scale_vqav2(demo: Path, root: Path, n: int) -> list[dict[str, Any]]:
    """Official val2014 questions and annotations, the demo's replicated with new question and image ids."""
    base = demo / "vqav2"
    questions = json.loads((base / "v2_OpenEnded_mscoco_val2014_questions.json").read_text())
    annotations = json.loads((base / "v2_mscoco_val2014_annotations.json").read_text())
    qs, anns = questions["questions"], annotations["annotations"]
    out_q, out_a = [], []
    for i in range(n):
        k, j = divmod(i, len(qs))
        offset_q, offset_i = k * 10_000_000, k * 100_000
        out_q.append(
            {**qs[j], "question_id": qs[j]["question_id"] + offset_q, "image_id": qs[j]["image_id"] + offset_i}
        )
        out_a.append(
            {**anns[j], "question_id": anns[j]["question_id"] + offset_q, "image_id": anns[j]["image_id"] + offset_i}
        )
    target = root / "vqav2"
    target.mkdir(parents=True, exist_ok=True)
    (target / "v2_OpenEnded_mscoco_val2014_questions.json").write_text(json.dumps({**questions, "questions": out_q}))
    (target / "v2_mscoco_val2014_annotations.json").write_text(json.dumps({**annotations, "annotations": out_a}))
    return [{"question_id": a["question_id"], "target": [x["answer"] for x in a["answers"]]} for a in out_a]


def _scale_gqa(demo: Path, root: Path, n: int) -> list[dict[str, Any]]:
    """The official testdev-balanced questions file, the demo's questions replicated with new ids."""
    from tasks.gqa import OFFICIAL_QUESTIONS

    questions = json.loads((demo / OFFICIAL_QUESTIONS).read_text())
    items = list(questions.items())
    out: dict[str, Any] = {}
    for i in range(n):
        k, j = divmod(i, len(items))
        qid, question = items[j]
        out[f"{qid}{k:05d}"] = {**question, "imageId": f"{question['imageId']}{k:05d}"}
    path = root / OFFICIAL_QUESTIONS
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out))
    return [{"question_id": qid, "target": q["answer"]} for qid, q in out.items()]


SCALERS = {"vqav2_val": _scale_vqav2, "gqa": _scale_gqa}


def _replicated_samples(task_name: str, demo: Path, n: int) -> list[Any]:
    """The demo's samples repeated with fresh ids up to ``n`` (for the in-process timing)."""
    from harness.registry import get_task

    samples = get_task(task_name).load(demo)
    if task_name in WHOLE_COPIES:  # image pairs (MME) and circular groups (MMBench) stay whole
        n = max(1, round(n / len(samples))) * len(samples)
    out = []
    for i in range(n):
        k, j = divmod(i, len(samples))
        s = samples[j]
        meta = dict(s.metadata)
        for key in ("image_id", "question_id", "index"):
            if key in meta and k:
                value = meta[key]
                meta[key] = value + k * 10_000_000 if isinstance(value, int) else f"{value}~{k}"
        out.append(dataclasses.replace(s, id=s.id if not k else f"{s.id}~{k}", metadata=meta))
    return out


def in_process(task_name: str, folder: Path, scale: float, seed: int) -> dict[str, Any]:
    """Samples/s of ``Task.score`` on the replicated demo samples (CPU seconds, caches cold)."""
    from harness.protocol import DEFAULT_PROTOCOL, load_protocol
    from harness.registry import get_task
    from harness.types import Response

    task = get_task(task_name)
    demo = _demo_root(task_name, folder / task_name, seed)
    samples = _replicated_samples(task_name, demo, _size(task_name, scale))
    rng = random.Random(seed)
    pool = [s.target for s in samples[:500]]
    responses = {s.id: Response(text=_answer_for(s.target, pool, rng)) for s in samples}
    settings = load_protocol(DEFAULT_PROTOCOL).settings_for(task)
    samples = task.select(samples, settings)
    start = time.process_time()
    result = task.score(samples, responses, settings, judge=None)
    seconds = time.process_time() - start
    headline = next(iter(result.headline), None)
    value = result.metrics[headline].value if headline in result.metrics else None
    return {"n": len(samples), "seconds": seconds, "value": value}


def write_root(task_name: str, folder: Path, scale: float, seed: int) -> tuple[Path, Path, int]:
    """A data root with the official files at size x ``scale`` and an answers JSONL for it."""
    demo = _demo_root(task_name, folder / f"{task_name}-source", seed)
    root = folder / f"{task_name}-root"
    rows = SCALERS[task_name](demo, root, _size(task_name, scale))
    rng = random.Random(seed)
    pool = [r["target"] for r in rows[:500]]
    answers = folder / f"{task_name}-answers.jsonl"
    with answers.open("w", encoding="utf-8") as f:
        for row in rows:
            line = {
                "question_id": row["question_id"],
                "text": _answer_for(row["target"], pool, rng),
                "model_id": "bench",
            }
            f.write(json.dumps(line) + "\n")
    return root, answers, len(rows)


def end_to_end(task_name: str, root: Path, answers: Path, memo: bool, cache: Path) -> dict[str, Any]:
    """Wall and CPU seconds of ``python -m harness score ... --json`` in a child process (``cache``: its cache
    folder; the baseline runs without the sample cache, as before issue 19)."""
    env = {
        **os.environ,
        "HARNESS_SCORING_MEMO": "1" if memo else "0",
        "HARNESS_SAMPLE_CACHE": "1" if memo else "0",
        "HARNESS_CACHE_DIR": str(cache),
        "PYTHONPATH": str(REPO),
    }
    command = [sys.executable, "-m", "harness", "score", task_name, "--answers", str(answers), "--data-root", str(root)]
    start, cpu_before = time.perf_counter(), os.times()
    proc = subprocess.run([*command, "--json"], capture_output=True, text=True, env=env, cwd=REPO, check=False)
    wall, cpu_after = time.perf_counter() - start, os.times()
    cpu = (cpu_after.children_user - cpu_before.children_user) + (
        cpu_after.children_system - cpu_before.children_system
    )
    if proc.returncode != 0:
        raise SystemExit(f"harness score {task_name} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    payload = json.loads(proc.stdout[proc.stdout.index("{") :])
    scores = payload.get("scores") or {}
    headline = (payload.get("headline") or [None])[0]
    return {"wall": wall, "cpu": cpu, "value": scores.get(headline)}


def _child_in_process(tasks: list[str], scale: float, seed: int, memo: bool) -> dict[str, dict[str, Any]]:
    """(a) in a fresh process (the memo switch is read at import)."""
    env = {**os.environ, "HARNESS_SCORING_MEMO": "1" if memo else "0", "PYTHONPATH": str(REPO)}
    command = [
        sys.executable,
        __file__,
        "--child",
        "--tasks",
        ",".join(tasks),
        "--scale",
        str(scale),
        "--seed",
        str(seed),
    ]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"in-process timing failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _best(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    """The fastest of several runs; every run must give the same headline value."""
    values = {repr(run["value"]) for run in runs}
    if len(values) > 1:
        raise SystemExit(f"error: repeated runs gave different headline values: {sorted(values)}")
    return min(runs, key=lambda run: run[key])


def _ratio(new: float | None, old: float | None) -> str:
    return f"{old / new:.1f}x" if new and old else "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=",".join(OFFICIAL_SIZES))
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the official sizes (default 1.0)")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--repeats", type=int, default=3, help="runs per timing, each in a fresh process (best kept)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the HARNESS_SCORING_MEMO=0 baseline runs")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    tasks = [t for t in args.tasks.split(",") if t]
    unknown = [t for t in tasks if t not in OFFICIAL_SIZES]
    if unknown:
        parser.error(f"unknown task(s) {unknown}; choose from {', '.join(OFFICIAL_SIZES)}")
    with tempfile.TemporaryDirectory(prefix="bench-scoring-") as tmp:
        folder = Path(tmp)
        if args.child:
            print(json.dumps({t: in_process(t, folder, args.scale, args.seed) for t in tasks}))
            return 0
        repeats = max(1, args.repeats)
        memos = [True] if args.no_baseline else [True, False]
        timed: dict[bool, list[dict[str, dict[str, Any]]]] = {memo: [] for memo in memos}
        for _ in range(repeats):  # interleaved, so both see the same machine noise
            for memo in memos:
                timed[memo].append(_child_in_process(tasks, args.scale, args.seed, memo=memo))
        new = {t: _best([run[t] for run in timed[True]], "seconds") for t in tasks}
        old = None if args.no_baseline else {t: _best([run[t] for run in timed[False]], "seconds") for t in tasks}
        e2e_new: dict[str, dict[str, Any]] = {}
        e2e_old: dict[str, dict[str, Any]] = {}
        first: dict[str, dict[str, Any]] = {}
        for task in tasks:
            if task in ON_DISK:
                root, answers, _ = write_root(task, folder, args.scale, args.seed)
                runs: dict[bool, list[dict[str, Any]]] = {memo: [] for memo in memos}
                for _ in range(repeats):
                    for memo in memos:
                        runs[memo].append(end_to_end(task, root, answers, memo, folder / "cache"))
                e2e_new[task] = _best(runs[True], "wall")
                first[task] = runs[True][0]  # parsed the official files (and kept them in the sample cache)
                if not args.no_baseline:
                    e2e_old[task] = _best(runs[False], "wall")
    status = 0
    header = (
        f"{'task':<10} {'n':>8} {'scorer samples/s':>17} {'baseline':>10} {'ratio':>6} "
        f"{'harness score s (cpu)':>22} {'baseline s (cpu)':>17} {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    for task in tasks:
        a, a_old = new[task], (old or {}).get(task)
        rate = a["n"] / a["seconds"] if a["seconds"] else float("inf")
        rate_old = a_old["n"] / a_old["seconds"] if a_old and a_old["seconds"] else None
        b, b_old = e2e_new.get(task), e2e_old.get(task)
        b_text = f"{b['wall']:.2f} ({b['cpu']:.2f})" if b else "-"
        b_old_text = f"{b_old['wall']:.2f} ({b_old['cpu']:.2f})" if b_old else "-"
        scorer_ratio = _ratio(1 / rate, 1 / rate_old if rate_old else None)
        print(
            f"{task:<10} {a['n']:>8} {rate:>17.0f} {rate_old or 0:>10.0f} {scorer_ratio:>6} "
            f"{b_text:>22} {b_old_text:>17} {_ratio(b['cpu'] if b else None, b_old['cpu'] if b_old else None):>6}"
        )
        for label, x, y in (("in-process", a, a_old), ("harness score", b, b_old)):
            if x and y and x["value"] != y["value"]:
                print(f"error: {task} {label}: headline {x['value']!r} with caches, {y['value']!r} without")
                status = 1
    for task, run in first.items():
        print(f"{task}: harness score's first run, which parses the files for the sample cache: "
              f"{run['wall']:.2f} s ({run['cpu']:.2f} cpu)")
    print(f"best of {max(1, args.repeats)} runs each; ratio = baseline time / new time, both measured in this run "
          "(baseline: HARNESS_SCORING_MEMO=0, and harness score without the sample cache)")
    return status


if __name__ == "__main__":
    sys.exit(main())
