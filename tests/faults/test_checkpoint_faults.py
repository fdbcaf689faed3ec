"""Damaged checkpoints and unusable ``--device`` values through the real CLI.

Each case copies a real tiny checkpoint (the shipped demo checkpoint, or a legacy, Factory or hf-adapter
look-alike built once per module), damages the copy and runs ``harness run`` or ``harness convert`` on it.
It must end with a non-zero exit (2 for a bad ``--device``) and stderr holding exactly one line, which
names the file or flag at fault, with no traceback and no terminal colour codes. Device strings the CLI's
flag does not let through yet (``mps``, malformed ones) are also checked at the adapters, in-process.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from harness.errors import UsageError
from model_adapters.demo_model import DEMO_CHECKPOINT_DIR
from model_adapters.hf_vlm import HFVLMAdapter
from model_adapters.tinyllava import TinyLlavaAdapter
from tests.helpers.paths import REPO
from tests.helpers.tiny_vlms import make_tiny_llava_chat
from tests.helpers.tinyllava_lookalikes import make_factory, make_legacy

ANSI = re.compile(r"\x1b\[")
WEIGHTS = "model.safetensors"
GENERATION = "generation_config.json"
TORCH_WEIGHTS = "pytorch_model.bin"


# ---------------------------------------------------------------------------------------------
# Damage done to a copied checkpoint directory


def truncate(file: str) -> Callable[[Path], None]:
    def damage(ckpt: Path) -> None:
        os.truncate(ckpt / file, (ckpt / file).stat().st_size // 2)

    return damage


def empty(file: str) -> Callable[[Path], None]:
    def damage(ckpt: Path) -> None:
        (ckpt / file).write_bytes(b"")

    return damage


def garbage_header(ckpt: Path) -> None:
    """The header's length field kept, its JSON overwritten."""
    data = (ckpt / WEIGHTS).read_bytes()
    (ckpt / WEIGHTS).write_bytes(data[:8] + b"<html>oops" + data[18:])


def truncated_torch_weights(ckpt: Path) -> None:
    """The weights as a torch ``pytorch_model.bin`` (a zip archive), cut short."""
    torch.save(load_file(ckpt / WEIGHTS), ckpt / TORCH_WEIGHTS)
    (ckpt / WEIGHTS).unlink()
    os.truncate(ckpt / TORCH_WEIGHTS, (ckpt / TORCH_WEIGHTS).stat().st_size // 2)


def garbage(file: str) -> Callable[[Path], None]:
    def damage(ckpt: Path) -> None:
        (ckpt / file).write_text("<html>this is not json {", encoding="utf-8")

    return damage


def remove(*files: str) -> Callable[[Path], None]:
    def damage(ckpt: Path) -> None:
        for file in files:
            (ckpt / file).unlink()

    return damage


def edit_weights(edit: Callable[[dict[str, torch.Tensor]], None]) -> Callable[[Path], None]:
    def damage(ckpt: Path) -> None:
        tensors = load_file(ckpt / WEIGHTS)
        edit(tensors)
        save_file(tensors, ckpt / WEIGHTS, metadata={"format": "pt"})

    return damage


def widen_projector(tensors: dict[str, torch.Tensor]) -> None:
    key = "multi_modal_projector.linear_1.weight"
    tensors[key] = torch.zeros(tensors[key].shape[0] + 3, tensors[key].shape[1], dtype=tensors[key].dtype)


def drop_projector_bias(tensors: dict[str, torch.Tensor]) -> None:
    del tensors["multi_modal_projector.linear_2.bias"]


def grow_config_vocab(ckpt: Path) -> None:
    config = json.loads((ckpt / "config.json").read_text())
    config["text_config"]["vocab_size"] += 7
    (ckpt / "config.json").write_text(json.dumps(config))


def grow_tokenizer(ckpt: Path) -> None:
    """A tokenizer with more tokens than the model has embedding rows."""
    from transformers import AutoTokenizer

    rows = load_file(ckpt / WEIGHTS)["language_model.model.embed_tokens.weight"].shape[0]
    tokenizer = AutoTokenizer.from_pretrained(ckpt)
    tokenizer.add_tokens([f"extra{i}" for i in range(rows + 5 - len(tokenizer))])
    tokenizer.save_pretrained(ckpt)


def no_damage(ckpt: Path) -> None:
    pass


# ---------------------------------------------------------------------------------------------
# The cases


@dataclass(frozen=True)
class Case:
    source: str  # "demo" (HF Llava), "legacy", "factory" or "hf" (the hf adapter's tiny Llava with a chat template)
    damage: Callable[[Path], None]
    culprit: str  # the file (relative to the checkpoint) or the flag the error line must name
    words: tuple[str, ...] = ()  # further text the error line must hold
    command: str = "run"  # "run" with the tinyllava adapter, "hf" (run with the hf adapter) or "convert"
    device: str = "cpu"
    exit_code: int = 1



CASES = {
    # HF Llava (the shipped demo checkpoint) through `harness run --model tinyllava:PATH`
    "truncated-weights": Case("demo", truncate(WEIGHTS), WEIGHTS, ("truncated",)),
    "zero-byte-weights": Case("demo", empty(WEIGHTS), WEIGHTS, ("empty",)),
    "garbage-header-weights": Case("demo", garbage_header, WEIGHTS, ("safetensors header",)),
    "truncated-torch-weights": Case("demo", truncated_torch_weights, TORCH_WEIGHTS, ("truncated",)),
    "wrong-shape-weights": Case("demo", edit_weights(widen_projector), WEIGHTS, ("linear_1.weight", "shape")),
    "missing-weights": Case("demo", edit_weights(drop_projector_bias), WEIGHTS, ("linear_2.bias",)),
    "vocab-config-mismatch": Case("demo", grow_config_vocab, WEIGHTS, ("vocab_size",)),
    "vocab-tokenizer-mismatch": Case("demo", grow_tokenizer, "tokenizer.json", ("tokens",)),
    "garbage-tokenizer-json": Case("demo", garbage("tokenizer.json"), "tokenizer.json", ("JSON",)),
    "garbage-tokenizer-config": Case("demo", garbage("tokenizer_config.json"), "tokenizer_config.json", ("JSON",)),
    "missing-tokenizer": Case("demo", remove("tokenizer.json", "tokenizer_config.json"), "tokenizer.json",
                              ("not found",)),
    "missing-tokenizer-json": Case("demo", remove("tokenizer.json"), "tokenizer.json", ("not found",)),
    # converted formats
    "legacy-missing-tokenizer-json": Case("legacy", remove("tokenizer.json"), "tokenizer.json", ("not found",)),
    "factory-garbage-tokenizer-config": Case("factory", garbage("tokenizer_config.json"), "tokenizer_config.json"),
    # the hf adapter
    "hf-truncated-weights": Case("hf", truncate(WEIGHTS), WEIGHTS, ("truncated",), command="hf"),
    "hf-vocab-config-mismatch": Case("hf", grow_config_vocab, WEIGHTS, ("vocab_size",), command="hf"),
    "hf-garbage-config": Case("hf", garbage("config.json"), "config.json", ("JSON",), command="hf"),
    "hf-garbage-generation-config": Case("hf", garbage(GENERATION), GENERATION, ("JSON",), command="hf"),
    # harness convert
    "convert-truncated-weights": Case("demo", truncate(WEIGHTS), WEIGHTS, ("truncated",), command="convert"),
    "convert-garbage-tokenizer-json": Case("demo", garbage("tokenizer.json"), "tokenizer.json", command="convert"),
    "convert-wrong-shape-weights": Case("demo", edit_weights(widen_projector), WEIGHTS, ("shape",), command="convert"),
    # --device
    "device-cuda-unavailable": Case("demo", no_damage, "--device cuda", device="cuda", exit_code=2),
    "device-mps-unavailable": Case("demo", no_damage, "--device mps", device="mps", exit_code=2),
    "device-malformed": Case("demo", no_damage, "--device cuda:x", device="cuda:x", exit_code=2),
}
MARKS = {
    "device-cuda-unavailable": [pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")],
    "device-mps-unavailable": [
        pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has MPS")
    ],
    "device-malformed": [],
}


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One undamaged checkpoint of each kind for the module (cases damage copies of them)."""
    root = tmp_path_factory.mktemp("checkpoints")
    shutil.copytree(DEMO_CHECKPOINT_DIR, root / "demo")
    return {
        "demo": root / "demo",
        "legacy": make_legacy(root / "legacy", "phi", "siglip").path,
        "factory": make_factory(root / "factory", "phi", "siglip").path,
        "hf": make_tiny_llava_chat(root / "hf"),
    }


def harness(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "harness", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=REPO)


def command_line(case: Case, ckpt: Path, out: Path) -> list[str]:
    if case.command == "convert":
        return ["convert", str(ckpt), str(out / "converted")]
    adapter = "hf" if case.command == "hf" else "tinyllava"
    return ["run", "--model", f"{adapter}:{ckpt}", "--tasks", "gqa", "--limit", "2", "--no-progress",
            "--device", case.device, "--output-dir", str(out)]  # fmt: skip


@pytest.mark.parametrize(
    "name", [pytest.param(name, marks=MARKS.get(name, []), id=name) for name in CASES]
)
def test_a_checkpoint_fault_is_one_line_naming_the_culprit(
    name: str, sources: dict[str, Path], tmp_path: Path
) -> None:
    case = CASES[name]
    ckpt = tmp_path / "checkpoint"
    shutil.copytree(sources[case.source], ckpt)
    case.damage(ckpt)
    proc = harness(*command_line(case, ckpt, tmp_path / "out"))
    assert proc.returncode == case.exit_code, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert not ANSI.search(proc.stderr), proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    culprit = case.culprit if case.culprit.startswith("--") else str(ckpt / case.culprit)
    assert lines[0].startswith("error: ") and culprit in lines[0], lines[0]
    assert all(word in lines[0] for word in case.words), lines[0]


@pytest.mark.parametrize("device", ["cuda", "mps", "cuda:x", "gpu0"])
@pytest.mark.parametrize("adapter", [TinyLlavaAdapter, HFVLMAdapter], ids=["tinyllava", "hf"])
def test_an_unusable_device_is_a_usage_error_before_loading(
    adapter: type[TinyLlavaAdapter | HFVLMAdapter], device: str, sources: dict[str, Path]
) -> None:
    if (device == "cuda" and torch.cuda.is_available()) or (device == "mps" and torch.backends.mps.is_available()):
        pytest.skip(f"this machine has {device}")
    ckpt = sources["demo" if adapter is TinyLlavaAdapter else "hf"]
    with pytest.raises(UsageError) as error:
        adapter.from_spec(str(ckpt), {}, device, 0)
    message = str(error.value)
    assert message.startswith(f"--device {device}: ") and "\n" not in message, message
