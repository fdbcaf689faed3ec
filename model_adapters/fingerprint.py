"""Content fingerprints of checkpoint directories (file digests memoized by harness.hashing)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.hashing import HashMemo

# Files that can change what a checkpoint answers: configs, weights, tokenizer files, templates.
OUTPUT_SUFFIXES = (".json", ".safetensors", ".bin", ".jinja", ".model", ".txt", ".tiktoken")
TOKENIZER_NAMES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "tokenizer.model")


def checkpoint_files(root: Path) -> list[Path]:
    """Files under ``root`` that affect outputs, sorted by relative name.

    Hidden folders (``.cache``, ``.git``) and trainer sub-checkpoints (``checkpoint-*``) are skipped.
    """
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and not d.startswith("checkpoint-")]
        for name in filenames:
            if name.endswith(OUTPUT_SUFFIXES) or name in TOKENIZER_NAMES:
                found.append(Path(dirpath) / name)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def file_digests(root: Path) -> list[tuple[str, str]]:
    """(relative name, sha256) for the output-affecting files of ``root``, memoized."""
    memo = HashMemo()
    pairs = [(p.relative_to(root).as_posix(), memo.digest(p)) for p in checkpoint_files(root)]
    memo.save()
    return pairs


def fingerprint(root: Path, settings: Mapping[str, Any]) -> str:
    """sha256 over the checkpoint's file digests and the adapter ``settings`` (JSON-serialisable)."""
    payload = {"files": file_digests(root), "settings": dict(settings)}
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(blob).hexdigest()
