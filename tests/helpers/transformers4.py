"""Plain transformers 4.x on converted checkpoints, for the tests that ``convert``'s output loads there too.

Two halves in one file:

- run as a script with the transformers-4 venv's python, ``<venv>/bin/python tests/helpers/transformers4.py
  DIR``: for every case folder in DIR (``hf/``, the converted checkpoint; ``image.png``), it loads the checkpoint
  with ``AutoProcessor`` and ``LlavaForConditionalGeneration``, renders the question with the processor's chat
  template, and writes ``tf4.json`` (the transformers version, the rendered text, the input ids, the loading
  report, or the error) and ``tf4.npz`` (``pixel_values``, ``logits``) into the folder. This half imports
  nothing of our project.
- :func:`ensure_venv` / :func:`run_transformers4` (pytest side) build the venv when it is missing and run
  that script.

The venv is ``$HARNESS_TF4_VENV``, else ``<repo>/.venv-tf4``: CPU torch 2.13.0 and the newest transformers 4.x.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback
from pathlib import Path

QUESTION = "What colour is the circle?"
PACKAGES = ("transformers>=4.45,<5", "safetensors", "pillow", "numpy")


def ensure_venv() -> Path:
    """The venv's python, building the venv first when it is missing or holds no transformers 4.x."""
    venv = Path(os.environ.get("HARNESS_TF4_VENV") or Path(__file__).resolve().parents[2] / ".venv-tf4")
    python = venv / "bin" / "python"
    check = "import sys, transformers, torch; sys.exit(0 if transformers.__version__.startswith('4.') else 3)"
    if python.is_file() and subprocess.run([python, "-c", check], capture_output=True).returncode == 0:
        return python
    steps = [
        [sys.executable, "-m", "venv", str(venv)],
        [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "torch==2.13.0"],  # CPU build first
        [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "torch==2.13.0", *PACKAGES],
    ]
    for step in steps:
        proc = subprocess.run([str(part) for part in step], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"building {venv} failed: {' '.join(map(str, step))}\n{proc.stderr[-2000:]}")
    return python


def run_transformers4(python: Path, cases: Path) -> None:
    """Run this file's script half over the case folders under ``cases`` (results land in each folder)."""
    proc = subprocess.run([str(python), __file__, str(cases)], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"transformers 4 script failed ({proc.returncode}):\n{proc.stderr[-3000:]}")


def _one(folder: Path) -> dict[str, object]:
    import numpy as np
    import torch
    import transformers
    from PIL import Image
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    processor = AutoProcessor.from_pretrained(folder / "hf")
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    encoded = processor(text=text, images=[Image.open(folder / "image.png")], return_tensors="pt")
    model, info = LlavaForConditionalGeneration.from_pretrained(folder / "hf", output_loading_info=True)
    with torch.no_grad():
        logits = model.eval()(**encoded).logits[0]
    np.savez(folder / "tf4.npz", pixel_values=encoded["pixel_values"].numpy(), logits=logits.numpy())
    return {
        "transformers": transformers.__version__,
        "text": text,
        "input_ids": encoded["input_ids"][0].tolist(),
        "inputs": sorted(encoded.keys()),
        "loading": {key: sorted(map(str, value)) for key, value in info.items() if key != "error_msgs"},
    }


def main(root: Path) -> None:
    for folder in sorted(p for p in root.iterdir() if (p / "hf").is_dir()):
        try:
            result = _one(folder)
        except Exception:
            result = {"error": traceback.format_exc()}
        (folder / "tf4.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
