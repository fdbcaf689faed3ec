"""Samples/s of one process against two (torchrun, gloo, one thread each) on the same run.

    python bench/data_parallel.py [--tasks gqa,mme,textvqa,vqav2_val] [--nproc 2] [--batch-size 16]

Each configuration runs ``harness run`` with a fresh results folder and no cache, so every answer is
generated. Printed per configuration: wall time of the whole command (model loading included), the
answering time (the sum of the tasks' times on rank 0, from its first claim to its last gathered answer),
samples/s on both, the ratio against one process measured in the same run, and whether the answers
and metrics of the runs are identical.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_once(tasks: str, nproc: int, batch_size: int, out: Path) -> tuple[float, dict]:
    launcher = [sys.executable] if nproc == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc)]  # fmt: skip
    command = [*launcher, "-m", "harness", "run", "--tasks", tasks, "--batch-size", str(batch_size), "--no-cache",
               "--no-progress", "--output-dir", str(out)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    start = time.perf_counter()
    subprocess.run(command, env=env, cwd=REPO, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - start
    result = json.loads(next(out.glob("*/results.json")).read_text())
    return wall, result


def answers(out: Path) -> dict:
    found = {}
    for path in out.glob("*/samples/*.jsonl"):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            found[(path.stem, record["id"])] = (record["response"] or {}).get("text")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", default="gqa,mme,textvqa,vqav2_val")
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for nproc in (1, args.nproc):
            out = Path(tmp) / f"p{nproc}"
            wall, result = run_once(args.tasks, nproc, args.batch_size, out)
            n = sum(t["timing"]["n_generated"] for t in result["tasks"].values())
            answering = sum(t["timing"]["seconds"] for t in result["tasks"].values())
            metrics = {(k, m): v["value"] for k, t in result["tasks"].items() for m, v in t["metrics"].items()}
            rows.append((nproc, n, wall, answering, metrics, answers(out)))
    base = rows[0]
    print(f"{'processes':>9} {'samples':>7} {'wall s':>7} {'samples/s':>9} {'ratio':>6} "
          f"{'answer s':>8} {'samples/s':>9} {'ratio':>6}")  # fmt: skip
    for nproc, n, wall, answering, _, _ in rows:
        print(f"{nproc:>9} {n:>7} {wall:>7.1f} {n / wall:>9.1f} {base[2] / wall:>6.2f} "
              f"{answering:>8.1f} {n / answering:>9.1f} {base[3] / answering:>6.2f}")  # fmt: skip
    same = all(r[4] == base[4] and r[5] == base[5] for r in rows)
    print(f"answers and metrics identical across process counts: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
