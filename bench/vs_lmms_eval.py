"""Marginal seconds per sample: lmms-eval's ``llava_hf`` against our harness, same checkpoint and data.

    python bench/vs_lmms_eval.py [--sizes 16,2048] [--repeats 3] [--work DIR]

Both run as subprocesses, each at two sizes, so start-up cost cancels:
marginal s/sample = (t(large) - t(small)) / (large - small), from the fastest of the repeats. The
large size is 2048 by default: on the toy model our harness needs about 2 ms a sample, so 48 extra
samples (16 vs 64) would vanish in the ~0.5 s jitter of process start-up.

The checkpoint is the demo model with a LlavaProcessor whose chat template renders the LLaVA v1 prompt;
the data is a GQA root of demo questions (ours) and the same questions and image bytes as a local
parquet task (lmms-eval). Both sides use the lmms-eval GQA prompt (question + short-answer suffix), 16
new tokens, greedy decoding, fp32, no image padding; lmms-eval's llava_hf needs batch size 1, we use our
default. Answers are compared per question. The harness also runs with image reuse off
(``HARNESS_IMAGE_CACHE_MB=0``: every request prepares its own images, as before image reuse), so the
report shows the harness before and after it, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.lmms_eval_env import Row, ensure_venv, lmms_env, run_lmms_eval, sample_answers, write_task
from harness.types import Sample

TASK = "bench_gqa"
BATCH_SIZE = 16  # the harness's default batch size
LMMS = "lmms-eval llava_hf (bs 1)"
OURS = f"harness tinyllava (bs {BATCH_SIZE})"
OURS_NO_REUSE = f"harness no image reuse (bs {BATCH_SIZE})"


@dataclass
class Timed:
    seconds: float
    answers: dict[str, str]  # question id -> answer
    generate_seconds: float  # as the harness itself reports its generation phase


def write_gqa_root(root: Path, n: int) -> None:
    """A GQA data root of at least ``n`` questions: demo roots of seeds 0, 1, ... merged, ids made unique."""
    from tasks.gqa import IMAGES_DIR, LLAVA_QUESTIONS, OFFICIAL_QUESTIONS, GQATask

    lines: list[str] = []
    official: dict[str, dict] = {}
    (root / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
    seed = 0
    while len(lines) < n:
        part = root / f".seed{seed}"
        GQATask().write_demo(part, seed)
        qid = {q: str(int(q) + seed * 1_000_000) for q in json.loads((part / OFFICIAL_QUESTIONS).read_text())}
        for old, question in json.loads((part / OFFICIAL_QUESTIONS).read_text()).items():
            image = f"s{seed}{question['imageId']}"
            for key in ("entailed", "equivalent"):
                question[key] = [qid.get(q, q) for q in question.get(key, [])]
            official[qid[old]] = {**question, "imageId": image}
        for line in (part / LLAVA_QUESTIONS).read_text().splitlines():
            rec = json.loads(line)
            rec["question_id"], rec["image"] = qid[str(rec["question_id"])], f"s{seed}{rec['image']}"
            lines.append(json.dumps(rec))
        for image in (part / IMAGES_DIR).iterdir():
            image.rename(root / IMAGES_DIR / f"s{seed}{image.name}")
        shutil.rmtree(part)
        seed += 1
    (root / LLAVA_QUESTIONS).write_text("\n".join(lines) + "\n")
    (root / OFFICIAL_QUESTIONS).write_text(json.dumps(official))


def prepare(work: Path, n_max: int) -> tuple[Path, Path, Path, list[Sample]]:
    """(checkpoint, our data root, lmms-eval task folder, the first ``n_max`` GQA questions)."""
    from model_adapters.demo_model import build_demo_checkpoint
    from model_adapters.llava_processor import attach_llava_processor
    from tasks.gqa import GQATask

    ckpt = attach_llava_processor(build_demo_checkpoint(work / "ckpt"))
    root = work / "data"
    write_gqa_root(root, n_max)
    samples = GQATask().load(root)[:n_max]
    rows = [Row(s.id, s.metadata["raw_question"], str(s.target), Path(s.images[0].path).read_bytes()) for s in samples]
    tasks = write_task(work / "tasks", TASK, rows, max_new_tokens=16)
    return ckpt, root, tasks, samples


def run_ours(ckpt: Path, root: Path, n: int, out: Path, env: dict[str, str]) -> Timed:
    cmd = [sys.executable, "-m", "harness", "run", "--tasks", "gqa", "--protocol", "lmms-eval", "--data-root",
           str(root), "--limit", str(n), "--batch-size", str(BATCH_SIZE), "--model", f"tinyllava:{ckpt}",
           "--model-args", "image_aspect_ratio=square",
           "--device", "cpu", "--no-cache", "--no-progress", "--output-dir", str(out)]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"harness run failed:\n{proc.stderr[-3000:]}")
    (log,) = out.glob("*/samples/gqa.jsonl")
    records = [json.loads(line) for line in log.read_text().splitlines()]
    timing = json.loads((log.parent.parent / "results.json").read_text())["tasks"]["gqa"]["timing"]
    return Timed(seconds, {r["id"]: r["response"]["text"] for r in records}, timing["generate_seconds"])


def run_lmms(python: Path, ckpt: Path, tasks: Path, n: int, out: Path, ids: list[str], env: dict[str, str]) -> Timed:
    args = ["--model", "llava_hf", "--model_args", f"pretrained={ckpt},dtype=float32,device_map=cpu",
            "--tasks", TASK, "--include_path", str(tasks), "--batch_size", "1", "--device", "cpu",
            "--limit", str(n)]  # fmt: skip
    run = run_lmms_eval(python, args, out, env)
    answers = sample_answers(run.samples[TASK])
    throughput = json.loads(run.results.read_text()).get("throughput") or {}
    generated = float(throughput.get("total_elapsed_time") or 0.0)
    return Timed(run.seconds, {ids[doc]: text for doc, text in answers.items()}, generated)


def fastest(timed: list[Timed]) -> Timed:
    return min(timed, key=lambda t: t.seconds)


def report(runs: dict[str, dict[int, list[Timed]]], small: int, large: int) -> None:
    """Fastest wall time per size, the spread over repeats, marginal s/sample and the ratio."""
    head = f"{'':30} {'t(' + str(small) + ')':>9} {'t(' + str(large) + ')':>9} {'spread':>7} {'s/sample':>9}"
    print(head + f" {'samples/s':>10}")
    margins = {}
    for label, by_size in runs.items():
        t_small, t_large = fastest(by_size[small]).seconds, fastest(by_size[large]).seconds
        spread = max(max(t.seconds for t in ts) - min(t.seconds for t in ts) for ts in by_size.values())
        margins[label] = (t_large - t_small) / (large - small)
        rate = f"{1 / margins[label]:10.1f}" if margins[label] > 0 else f"{'n/a':>10}"
        print(f"{label:30} {t_small:8.2f}s {t_large:8.2f}s {spread:6.2f}s {margins[label]:9.4f} {rate}")
    if margins[OURS] > 0:
        print(f"speed-up (marginal s/sample, lmms-eval / harness): {margins[LMMS] / margins[OURS]:.1f}x")
        if margins.get(OURS_NO_REUSE, 0) > 0:
            print(f"image reuse (marginal s/sample, without / with): {margins[OURS_NO_REUSE] / margins[OURS]:.2f}x")
    else:
        print("speed-up: not measurable, the harness's marginal time is below the start-up noise (larger --sizes)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="16,2048", help="two run sizes, SMALL,LARGE")
    parser.add_argument("--repeats", type=int, default=3, help="runs per size and harness (the fastest counts)")
    parser.add_argument("--work", default=None, help="working folder (default: a temporary one)")
    args = parser.parse_args()
    small, large = sorted(int(s) for s in args.sizes.split(","))
    work = Path(args.work or tempfile.mkdtemp(prefix="vs-lmms-"))
    work.mkdir(parents=True, exist_ok=True)
    python = ensure_venv(log=lambda line: print(line, file=sys.stderr))
    env = lmms_env({"HARNESS_CACHE_DIR": str(work / "cache"), "HF_DATASETS_CACHE": str(work / "hf-datasets")})
    ckpt, root, tasks, samples = prepare(work, large)
    ids = [s.id for s in samples]

    runs: dict[str, dict[int, list[Timed]]] = {label: {small: [], large: []} for label in (LMMS, OURS, OURS_NO_REUSE)}
    no_reuse = {**env, "HARNESS_IMAGE_CACHE_MB": "0"}
    for r in range(max(1, args.repeats)):  # interleaved, so both see the same machine noise
        for n in (small, large):
            runs[OURS][n].append(run_ours(ckpt, root, n, work / f"ours-{n}-{r}", env))
            runs[OURS_NO_REUSE][n].append(run_ours(ckpt, root, n, work / f"ours-noreuse-{n}-{r}", no_reuse))
            runs[LMMS][n].append(run_lmms(python, ckpt, tasks, n, work / f"lmms-{n}-{r}", ids, env))
            times = ", ".join(f"{label} {runs[label][n][-1].seconds:.2f}s" for label in runs)
            print(f"repeat {r}, n={n}: {times}", file=sys.stderr)
    report(runs, small, large)
    lmms = {n: fastest(t) for n, t in runs[LMMS].items()}
    ours = {n: fastest(t) for n, t in runs[OURS].items()}
    print(
        f"self-reported generation phase at n={large}: lmms-eval {lmms[large].generate_seconds / large:.4f} s/sample "
        f"(model.generate calls only), harness {ours[large].generate_seconds / large:.4f} s/sample "
        "(image decoding, preprocessing and generate)"
    )
    before = fastest(runs[OURS_NO_REUSE][large]).answers
    same_reuse = sum(before.get(qid) == ours[large].answers.get(qid) for qid in ids)
    print(f"identical answers with and without image reuse: {same_reuse}/{len(ids)} questions")
    a, b = lmms[large].answers, ours[large].answers
    same = [qid for qid in ids if a.get(qid, "").strip() == b.get(qid, "\0").strip()]
    print(f"identical answers: {len(same)}/{len(ids)} questions")
    for qid in [q for q in ids if q not in same][:5]:
        print(f"  {qid}: lmms-eval {a.get(qid)!r} vs harness {b.get(qid)!r}")
    print(f"work folder: {work}")
    return 0 if len(same) == len(ids) and same_reuse == len(ids) else 1


if __name__ == "__main__":
    sys.exit(main())
