"""Driving lmms-eval from our side: its own venv, a local parquet task, a run whose output is checked.

lmms-eval 0.7.3 installs only in a venv of its own (docs: environment notes, section 3), and it exits
0 even when evaluation fails, so a run here counts only when its results file exists and parses.

    python3 bench/lmms_eval_env.py [--venv DIR]     # build (or check) the venv; stdlib only

The venv is ``$HARNESS_LMMS_VENV``, else ``<repo>/.venv-lmms``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PINS = ("torch==2.13.0", "filelock<4")  # CPU torch; filelock 4 lacks the filelock._api lmms-eval imports
OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "WANDB_MODE": "disabled",
    "TOKENIZERS_PARALLELISM": "false",
}
SHORT_ANSWER = "\nAnswer the question using a single word or phrase."


def venv_dir(repo: Path = REPO) -> Path:
    return Path(os.environ.get("HARNESS_LMMS_VENV") or repo / ".venv-lmms")


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _run(cmd: Sequence[str], log: Callable[[str], None]) -> None:
    log("$ " + " ".join(str(c) for c in cmd))
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-15:])
        raise RuntimeError(f"command failed ({proc.returncode}): {' '.join(map(str, cmd))}\n{tail}")


def _works(python: Path, repo: Path) -> bool:
    """lmms-eval imports, and our package is installed from ``repo`` with the plugin entry point."""
    if not python.is_file():
        return False
    check = (
        "import lmms_eval.models as m, model_adapters, pathlib, sys;"
        "assert 'tinyllava_harness' in m.list_available_models();"
        f"sys.exit(0 if pathlib.Path(model_adapters.__path__[0]).parent == pathlib.Path({str(repo)!r}) else 3)"
    )
    return subprocess.run([str(python), "-c", check], capture_output=True).returncode == 0


def our_dependencies(repo: Path) -> list[str]:
    """The project's own requirements (pip skips those the lmms-eval install already satisfies)."""
    return list(tomllib.loads((repo / "pyproject.toml").read_text())["project"]["dependencies"])


def ensure_venv(venv: Path | None = None, repo: Path = REPO, log: Callable[[str], None] = print) -> Path:
    """The venv's python, building the venv with the recipe that works when it is missing or stale."""
    venv = venv or venv_dir(repo)
    python = venv_python(venv)
    if _works(python, repo):
        return python
    pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    pins = venv / "pins.txt"
    if not python.is_file():
        _run([sys.executable, "-m", "venv", venv], log)
    pins.write_text("\n".join(PINS) + "\n")
    _run([*pip, "torch==2.13.0"], log)  # first, so nothing below can swap in a CUDA build
    _run([*pip, "lmms-eval", "decord", "-c", pins], log)  # decord: llava_hf imports it
    _run([python, "-m", "pip", "uninstall", "-y", "-q", "torchvision"], log)  # broken on CPU torch 2.13
    _run([*pip, "-e", repo, "--no-deps"], log)
    _run([*pip, *our_dependencies(repo), "-c", pins], log)
    if not _works(python, repo):
        raise RuntimeError(f"{venv}: lmms-eval or the tinyllava_harness plugin does not import after the build")
    return python


# ---------------------------------------------------------------------------------------------
# A local task: parquet rows (question, answer, image bytes) + YAML + doc hooks


@dataclass(frozen=True)
class Row:
    question_id: str
    question: str
    answer: str
    image: bytes  # encoded image file (PNG/JPEG), decoded by lmms-eval's datasets Image feature


UTILS = '''"""Doc hooks of a local task written by bench/lmms_eval_env.py."""


def doc_to_visual(doc):
    return [doc["image"].convert("RGB")]


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    kwargs = lmms_eval_specific_kwargs or {}
    return f"{kwargs.get('pre_prompt', '')}{doc['question']}{kwargs.get('post_prompt', '')}"
'''


def write_parquet(path: Path, rows: Sequence[Row]) -> None:
    """Rows as parquet whose schema metadata declares a datasets Image column (so docs get PIL images)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    string = {"dtype": "string", "_type": "Value"}
    features = {"question_id": string, "question": string, "answer": string, "image": {"_type": "Image"}}
    schema = pa.schema(
        [
            ("question_id", pa.string()),
            ("question", pa.string()),
            ("answer", pa.string()),
            ("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
        ],
        metadata={"huggingface": json.dumps({"info": {"features": features}})},
    )
    columns = {
        "question_id": [r.question_id for r in rows],
        "question": [r.question for r in rows],
        "answer": [r.answer for r in rows],
        "image": [{"bytes": r.image, "path": None} for r in rows],
    }
    pq.write_table(pa.table(columns, schema=schema), path)


def write_task(folder: Path, name: str, rows: Sequence[Row], max_new_tokens: int = 16) -> Path:
    """A generate_until task in lmms-eval's GQA style (prompt suffix, greedy, exact match); returns ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / f"{name}.parquet"
    write_parquet(data, rows)
    (folder / "utils.py").write_text(UTILS)
    config = f"""dataset_path: parquet
dataset_kwargs:
  data_files:
    test: {json.dumps(str(data.resolve()))}
task: {json.dumps(name)}
test_split: test
output_type: generate_until
doc_to_visual: !function utils.doc_to_visual
doc_to_text: !function utils.doc_to_text
doc_to_target: "answer"
generation_kwargs:
  max_new_tokens: {max_new_tokens}
  temperature: 0
  top_p: 1.0
  num_beams: 1
  do_sample: false
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
    ignore_case: true
    ignore_punctuation: true
lmms_eval_specific_kwargs:
  default:
    pre_prompt: ""
    post_prompt: {json.dumps(SHORT_ANSWER)}
"""
    (folder / f"{name}.yaml").write_text(config)
    return folder


# ---------------------------------------------------------------------------------------------
# Running lmms-eval and reading what it wrote


@dataclass
class LmmsRun:
    results: Path
    samples: dict[str, Path]  # task -> samples jsonl
    seconds: float
    output: str


def lmms_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, **OFFLINE, **(extra or {})}


def run_lmms_eval(
    python: Path, args: Sequence[str], output_path: Path, env: Mapping[str, str], timeout: float = 900
) -> LmmsRun:
    """``python -m lmms_eval eval ARGS --output_path OUT --log_samples``; its results file must appear."""
    import time

    before = set(output_path.rglob("*_results.json")) if output_path.exists() else set()
    cmd = [str(python), "-m", "lmms_eval", "eval", *args, "--output_path", str(output_path), "--log_samples"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(env), timeout=timeout)
    seconds = time.perf_counter() - start
    output = proc.stdout + proc.stderr
    new = sorted(set(output_path.rglob("*_results.json")) - before) if output_path.exists() else []
    if proc.returncode != 0 or not new:
        tail = "\n".join(output.splitlines()[-25:])
        raise RuntimeError(f"lmms-eval wrote no results file under {output_path} (exit {proc.returncode}):\n{tail}")
    results = new[-1]
    json.loads(results.read_text())  # it must parse
    prefix = results.name.removesuffix("_results.json") + "_samples_"
    samples = {p.name[len(prefix) : -len(".jsonl")]: p for p in results.parent.glob(f"{prefix}*.jsonl")}
    return LmmsRun(results, samples, seconds, output)


def sample_answers(path: Path) -> dict[int, str]:
    """doc_id -> the model's raw answer from an lmms-eval samples file."""
    answers: dict[int, str] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            resp = rec["resps"] if "resps" in rec else rec.get("filtered_resps")
            while isinstance(resp, list) and resp:
                resp = resp[0]
            answers[int(rec["doc_id"])] = str(resp)
    return answers


def main() -> int:
    parser = argparse.ArgumentParser(description="build (or check) the lmms-eval venv")
    parser.add_argument("--venv", default=None, help="default: $HARNESS_LMMS_VENV, else <repo>/.venv-lmms")
    args = parser.parse_args()
    python = ensure_venv(Path(args.venv) if args.venv else None)
    print(f"lmms-eval venv ready: {python}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
