"""Per-kind yes/no accuracy of a demo checkpoint on many eval-split scenes: the diagnostic behind the demo
model section of docs/training.md.

    python bench/demo_yesno_probe.py [CHECKPOINT] [--images-per-kind N] [--show K]

The demo MME has two images per subtask, too few to tell which kinds a model answers; this asks each of
MME's fourteen question writers about N fresh eval-split scenes (both questions of each pair, with the
``llava15`` prompt) and prints, per kind, accuracy, accuracy+ (both questions of an image right), the share
of "Yes" answers, and the MME-style score (acc + acc+) next to the image-blind floors: always "Yes" scores
50 per kind, a coin flip 75. A kind answered with a fixed "Yes" or "No" shows a yes-share of 1.00 or 0.00.
"""

from __future__ import annotations

import argparse
import random
import tempfile
from collections import defaultdict
from pathlib import Path

from harness.types import GenerationSettings, ImageRef, Request
from model_adapters.demo_model import DEMO_CHECKPOINT_DIR
from model_adapters.tinyllava import TinyLlavaAdapter
from tasks.common.yesno import parse_yes_no
from tasks.demo.scenes import make_scene, render
from tasks.mme import demo as mme
from tasks.mme.scorer import ToolLine, one_line, subtask_stats

FIRST_SCENE = 100_000  # eval-split scene indices far from the demo benchmarks' own
BATCH = 64


def probe_requests(images_per_kind: int, folder: Path, seed: int = 0) -> list[tuple[str, int, bool, Request]]:
    """(kind, image number, expected yes, request) for both questions of each image, images written to ``folder``."""
    rng = random.Random(seed)
    out = []
    for k, kind in enumerate(mme.SUBTASKS):
        index, found = FIRST_SCENE + 10_000 * k, 0
        while found < images_per_kind:
            index += 1
            scene = make_scene(seed, "eval", index)
            pair = mme.QUESTION_WRITERS[kind](scene, rng)
            if pair is None:
                continue
            path = folder / f"{kind}-{index}.jpg"
            render(scene, mme.IMAGE_SIZE).save(path, quality=mme.JPEG_QUALITY)
            for expected, question in zip((True, False), pair, strict=True):
                prompt = "<image>\n" + mme.llava_text(question + mme.SUFFIX)
                request = Request(
                    "yesno_probe",
                    f"{kind}-{index}-{expected}",
                    prompt,
                    (ImageRef(str(path)),),
                    GenerationSettings(max_new_tokens=8),
                )
                out.append((kind, found, expected, request))
            found += 1
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", nargs="?", default=str(DEMO_CHECKPOINT_DIR))
    parser.add_argument("--images-per-kind", type=int, default=30)
    parser.add_argument("--show", type=int, default=0, help="print this many answers per kind")
    args = parser.parse_args()
    adapter = TinyLlavaAdapter.from_spec(args.checkpoint, {}, "cpu", 0)
    preparer = adapter.preparer()
    with tempfile.TemporaryDirectory() as tmp:
        items = probe_requests(args.images_per_kind, Path(tmp))
        texts: list[str] = []
        for start in range(0, len(items), BATCH):
            batch = [item[3] for item in items[start : start + BATCH]]
            texts += [r.text for r in adapter.generate(batch, [preparer(r) for r in batch])]
    lines: dict[str, list[ToolLine]] = defaultdict(list)
    shown: dict[str, int] = defaultdict(int)
    for (kind, image, expected, request), text in zip(items, texts, strict=True):
        label = parse_yes_no(one_line(text))  # as the MME eval tool reads an answer
        lines[kind].append(ToolLine(request.sample_id, f"{kind}-{image}", "Yes" if expected else "No", label))
        if shown[kind] < args.show:
            shown[kind] += 1
            print(f"  {kind} expected {'yes' if expected else 'no'}: {text!r}")
    print(f"{'kind':24s} {'acc':>5s} {'acc+':>5s} {'yes':>5s} {'score':>6s}   (always Yes: 50, coin flip: 75)")
    totals = {"perception": 0.0, "cognition": 0.0}
    for kind in mme.SUBTASKS:
        stats = subtask_stats(lines[kind])  # the eval tool's acc / acc+ over consecutive pairs
        totals["perception" if kind in mme.PERCEPTION else "cognition"] += stats.score
        share = sum(line.label == "yes" for line in lines[kind]) / len(lines[kind])
        print(f"{kind:24s} {100 * stats.acc:5.1f} {100 * stats.acc_plus:5.1f} {share:5.2f} {stats.score:6.1f}")
    n_perception, n_cognition = len(mme.PERCEPTION), len(mme.COGNITION)
    print(
        f"perception {totals['perception']:.0f} (always Yes {50 * n_perception}, coin flip {75 * n_perception}); "
        f"cognition {totals['cognition']:.0f} (always Yes {50 * n_cognition}, coin flip {75 * n_cognition})"
    )


if __name__ == "__main__":
    main()
