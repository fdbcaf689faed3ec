"""Reading checkpoint tensors: safetensors or torch pickles, single files or shards."""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Iterable
from pathlib import Path

import torch

from harness.errors import DataError, HarnessError

Tensors = dict[str, torch.Tensor]
Shapes = dict[str, list[int]]

INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
SINGLE_FILES = ("model.safetensors", "pytorch_model.bin")
_SHARD = re.compile(r"^(?P<stem>.+)-(?P<i>\d+)-of-(?P<n>\d+)\.(?P<ext>safetensors|bin)$")
MAX_SAFETENSORS_HEADER = 100 * 1024**2  # the safetensors library refuses larger headers


def first_line(exc: BaseException) -> str:
    """An exception's message cut to its first line (errors are reported on one line)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def safetensors_shapes(path: Path) -> Shapes:
    """Tensor names and shapes from a ``.safetensors`` header, read without loading any tensor.

    DataError naming the file when it is empty, shorter than its header says (truncated) or does not start
    with a safetensors header (garbage).
    """
    size = path.stat().st_size
    if size == 0:
        raise DataError(f"{path} is empty (0 bytes): not a safetensors file")
    if size < 8:
        raise DataError(f"{path} is only {size} bytes: truncated, or not a safetensors file")
    with path.open("rb") as f:
        length = int.from_bytes(f.read(8), "little")
        raw = f.read(min(length, MAX_SAFETENSORS_HEADER))
    if not raw.startswith(b"{") or length > MAX_SAFETENSORS_HEADER:
        raise DataError(f"{path} does not start with a safetensors header (garbage, or another file format)")
    if len(raw) < length:
        raise DataError(f"{path} is truncated: {size} bytes, fewer than its {length}-byte header needs")
    try:
        header = json.loads(raw)
    except ValueError as exc:
        raise DataError(f"{path} has a garbage safetensors header ({first_line(exc)})") from exc
    if not isinstance(header, dict):
        raise DataError(f"{path} has a garbage safetensors header (not a JSON object)")
    shapes: Shapes = {}
    end = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            shapes[name] = [int(x) for x in entry["shape"]]
            end = max(end, int(entry["data_offsets"][1]))
        except (KeyError, IndexError, TypeError, ValueError):
            bad = f"entry '{name}' has no shape or offsets"
            raise DataError(f"{path} has a garbage safetensors header ({bad})") from None
    if 8 + length + end > size:
        raise DataError(f"{path} is truncated: {size} bytes, but its header describes {8 + length + end}")
    return shapes


def check_torch_file(path: Path) -> None:
    """DataError naming a torch ``.bin`` file that is empty, truncated (a zip archive without its end) or not a
    torch file at all; only the file's first bytes and its zip directory are read."""
    size = path.stat().st_size
    if size == 0:
        raise DataError(f"{path} is empty (0 bytes): not a torch weights file")
    with path.open("rb") as f:
        head = f.read(4)
    if head == b"PK\x03\x04":
        if not zipfile.is_zipfile(path):
            raise DataError(f"{path} is truncated or damaged: {size} bytes and no end of its zip archive")
    elif not head.startswith(b"\x80"):  # torch's legacy format is a plain pickle
        raise DataError(f"{path} is not a torch weights file (garbage, or another file format)")


def check_weight_file(path: Path) -> Shapes:
    """The checks of :func:`safetensors_shapes` or :func:`check_torch_file`; shapes of safetensors files only."""
    if path.suffix == ".safetensors":
        return safetensors_shapes(path)
    check_torch_file(path)
    return {}


def read_tensor_file(path: Path) -> Tensors:
    """All tensors of one ``.safetensors`` or torch ``.bin`` file (loaded on the CPU, no pickled code)."""
    if not path.is_file():
        raise HarnessError(f"{path} not found")
    check_weight_file(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return dict(load_file(str(path)))
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt files raise many types
        raise HarnessError(f"cannot read weights file {path}: {type(exc).__name__}: {first_line(exc)}") from exc
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise HarnessError(f"{path} is not a dictionary of tensors")
    return dict(data)


def _indexed_shards(root: Path, index: Path) -> list[Path]:
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise HarnessError(f"cannot read the shard index {index}: {first_line(exc)}") from exc
    names = sorted(set(weight_map.values()))
    missing = [name for name in names if not (root / name).is_file()]
    if missing:
        raise HarnessError(f"checkpoint {root} is missing shard {', '.join(missing)} (listed in {index.name})")
    return [root / name for name in names]


def _numbered_shards(root: Path) -> list[Path]:
    """``model-00001-of-00003.safetensors``-style files without an index; every number must be present."""
    groups: dict[tuple[str, str, int, int], set[int]] = {}
    for path in root.iterdir():
        match = _SHARD.match(path.name)
        if match:
            key = (match["stem"], match["ext"], int(match["n"]), len(match["n"]))
            groups.setdefault(key, set()).add(int(match["i"]))
    if not groups:
        return []
    (stem, ext, total, width), present = sorted(groups.items())[0]
    names = [f"{stem}-{i:0{width}d}-of-{total:0{width}d}.{ext}" for i in range(1, total + 1)]
    missing = [name for i, name in enumerate(names, start=1) if i not in present]
    if missing:
        raise HarnessError(f"checkpoint {root} is missing shard {', '.join(missing)}")
    return [root / name for name in names]


def weight_files(root: Path) -> list[Path]:
    """The files holding a checkpoint directory's model weights; [] when it has none.

    An index file wins; then a single ``model.safetensors`` / ``pytorch_model.bin``; then numbered shards.
    A shard named by the index (or by the numbering) that is absent is an error naming it.
    """
    for name in INDEX_FILES:
        if (root / name).is_file():
            return _indexed_shards(root, root / name)
    for name in SINGLE_FILES:
        if (root / name).is_file():
            return [root / name]
    return _numbered_shards(root)


def read_weights(root: Path) -> Tensors:
    """Every model tensor of a checkpoint directory (all shards merged)."""
    files = weight_files(root)
    if not files:
        raise HarnessError(
            f"checkpoint {root} has no model weights (model.safetensors, pytorch_model.bin or an index of shards)"
        )
    return merge_files(files)


def weight_shapes(root: Path) -> dict[str, tuple[Path, list[int]]]:
    """Stored tensor name -> (file, shape) over a checkpoint's weight files, each file checked first
    (:func:`check_weight_file`); torch ``.bin`` files are checked but contribute no shapes."""
    found: dict[str, tuple[Path, list[int]]] = {}
    for path in weight_files(root):
        found.update({name: (path, shape) for name, shape in check_weight_file(path).items()})
    return found


def merge_files(files: Iterable[Path]) -> Tensors:
    tensors: Tensors = {}
    for path in files:
        tensors.update(read_tensor_file(path))
    return tensors


def strip_prefix(tensors: Tensors, prefix: str) -> Tensors:
    """The tensors whose names start with ``prefix``, with it removed."""
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def main_float_dtype(tensors: Tensors) -> torch.dtype:
    """The floating dtype holding most parameters (float32 when there are none)."""
    counts: dict[torch.dtype, int] = {}
    for value in tensors.values():
        if value.is_floating_point():
            counts[value.dtype] = counts.get(value.dtype, 0) + value.numel()
    return max(counts, key=lambda d: counts[d]) if counts else torch.float32
