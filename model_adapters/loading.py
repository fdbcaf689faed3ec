"""Loading checkpoint files through transformers with one-line errors that name the file at fault.

transformers reports a damaged checkpoint as a traceback (safetensors, JSON or tokenizer errors) or as a
multi-line coloured LOAD REPORT followed by a RuntimeError. Here its logging is held at error level while
loading, files are checked before transformers reads them (safetensors headers, JSON files), whatever it
still raises becomes a :class:`HarnessError`, and missing or mismatched weights are reported in one line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from harness.errors import DataError, HarnessError
from model_adapters.formats.tensors import first_line, weight_files, weight_shapes

# JSON files a tokenizer or processor may read; each is checked before transformers parses it.
TOKENIZER_JSON = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json")
PROCESSOR_JSON = ("processor_config.json", "preprocessor_config.json")
MODEL_JSON = ("config.json", "generation_config.json")
# Files that hold a tokenizer's vocabulary (one of them is needed).
VOCABULARY_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "vocab.txt", "spiece.model")
EMBEDDING_NAMES = ("embed_tokens.weight", "lm_head.weight")

StoredShapes = Mapping[str, tuple[Path, list[int]]]


def describe(exc: BaseException) -> str:
    """``Type: first line of the message`` (an exception on one line)."""
    return f"{type(exc).__name__}: {first_line(exc)}"


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """transformers' logging at error level and no progress bars while inside (no load report on stderr)."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def check_json_files(directory: Path, names: Sequence[str]) -> None:
    """DataError naming the first of ``names`` in ``directory`` that exists but is not a JSON object."""
    for name in names:
        file = directory / name
        if not file.is_file():
            continue
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(f"{file} is not valid JSON ({first_line(exc)})") from exc
        if not isinstance(data, dict):
            raise DataError(f"{file} is not a JSON object")


# ---------------------------------------------------------------------------------------------
# Models


def load_pretrained(model_class: Any, path: Path, **kwargs: Any) -> Any:
    """``model_class.from_pretrained(path, **kwargs)`` with every weight accounted for.

    Weight files are checked first (headers, shards); a tensor the config does not expect in that shape, or
    a weight the checkpoint lacks (it would stay randomly initialised), is a DataError naming the file.
    """
    if not (path / "config.json").is_file():
        raise DataError(f"{path / 'config.json'} not found: not a Hugging Face checkpoint directory")
    check_json_files(path, MODEL_JSON)
    stored = weight_shapes(path)
    try:
        with quiet_transformers():
            model, loading = model_class.from_pretrained(
                path, output_loading_info=True, ignore_mismatched_sizes=True, **kwargs
            )
    except HarnessError:
        raise
    except Exception as exc:  # transformers and safetensors raise many types for one bad file
        raise HarnessError(f"cannot load checkpoint {path}: {describe(exc)}") from exc
    problem = weight_problem(path, loading, stored, model.config)
    if problem:
        raise DataError(problem)
    return model


def weight_problem(path: Path, loading: Mapping[str, Any], stored: StoredShapes, config: Any) -> str | None:
    """One line on the first mismatched, else missing, weights of a load (None when all loaded)."""
    mismatched = sorted((str(k), list(a), list(b)) for k, a, b in loading.get("mismatched_keys") or ())
    missing = sorted(str(k) for k in loading.get("missing_keys") or ())
    files = weights_label(path)
    if mismatched:
        key, found, wanted = mismatched[0]
        file, name = locate(key, found, stored, files)
        more = [f"{len(mismatched) - 1} more tensor(s) mismatched"] if len(mismatched) > 1 else []
        vocab = vocab_size(config)
        if key.endswith(EMBEDDING_NAMES) and found[1:] == wanted[1:] and wanted[0] == vocab:
            note = "; ".join(["vocabulary mismatch", *more])
            return (
                f"{file}: tensor {name} has {found[0]} rows but {path / 'config.json'} says vocab_size {vocab} ({note})"
            )
        note = f" ({more[0]})" if more else ""
        return f"{file}: tensor {name} has shape {found} but {path / 'config.json'} implies {wanted}{note}"
    if missing:
        shown = ", ".join(missing[:3])
        return (
            f"{files} lacks {len(missing)} weight(s) that {path / 'config.json'} describes "
            f"(they would stay random), e.g. {shown}"
        )
    return None


def weights_label(path: Path) -> str:
    """The weight file of a checkpoint, or its directory when the weights are sharded (or absent)."""
    files = weight_files(path)
    return str(files[0]) if len(files) == 1 else str(path)


def locate(key: str, shape: list[int], stored: StoredShapes, fallback: str) -> tuple[str, str]:
    """(file, stored name) of the tensor transformers calls ``key`` with ``shape``: the stored name of that
    shape sharing the longest dotted suffix with ``key``; (``fallback``, ``key``) when none is unique."""
    parts = key.split(".")

    def shared(name: str) -> int:
        other = name.split(".")
        n = 0
        while n < min(len(parts), len(other)) and parts[-1 - n] == other[-1 - n]:
            n += 1
        return n

    scored = sorted(((shared(name), name) for name, (_, s) in stored.items() if s == shape), reverse=True)
    if scored and scored[0][0] > 0 and (len(scored) == 1 or scored[1][0] < scored[0][0]):
        name = scored[0][1]
        return str(stored[name][0]), name
    return fallback, key


def vocab_size(config: Any) -> int | None:
    """The language model's vocabulary size from a (multimodal) config."""
    text = getattr(config, "text_config", None) or config
    value = getattr(text, "vocab_size", None)
    return int(value) if value is not None else None


def check_vocabulary(tokenizer: Any, model: Any, tokenizer_dir: Path, path: Path) -> None:
    """DataError when the tokenizer has ids past the model's embedding rows (they would index out of range)."""
    rows = int(model.get_input_embeddings().weight.shape[0])
    if len(tokenizer) > rows:
        raise DataError(
            f"{tokenizer_file(tokenizer_dir)} has {len(tokenizer)} tokens but the model in {path} embeds only "
            f"{rows} (vocabulary mismatch between the tokenizer and the weights)"
        )


# ---------------------------------------------------------------------------------------------
# Tokenizers and processors


def tokenizer_file(directory: Path) -> Path:
    """The file that names a tokenizer in messages: its first vocabulary file, else tokenizer_config.json."""
    for name in VOCABULARY_FILES:
        if (directory / name).is_file():
            return directory / name
    return directory / "tokenizer_config.json"


def load_tokenizer(directory: Path, **kwargs: Any) -> Any:
    """``AutoTokenizer.from_pretrained(directory)``; DataError naming the file that is missing or malformed."""
    from transformers import AutoTokenizer

    check_json_files(directory, TOKENIZER_JSON)
    try:
        with quiet_transformers():
            return AutoTokenizer.from_pretrained(directory, **kwargs)
    except HarnessError:
        raise
    except Exception as exc:  # tokenizers, sentencepiece and transformers raise many types
        raise tokenizer_error(directory, exc) from exc


def tokenizer_error(directory: Path, exc: BaseException) -> DataError:
    """What went wrong loading the tokenizer in ``directory``: no vocabulary file, else the file and error."""
    if not any((directory / name).is_file() for name in VOCABULARY_FILES):
        return DataError(
            f"{directory / 'tokenizer.json'} not found: the checkpoint has no tokenizer vocabulary "
            f"({', '.join(VOCABULARY_FILES)})"
        )
    return DataError(f"cannot load the tokenizer {tokenizer_file(directory)}: {describe(exc)}")


def load_processor(directory: Path, **kwargs: Any) -> Any:
    """``AutoProcessor.from_pretrained(directory)`` with its JSON files checked first; one-line errors."""
    from transformers import AutoProcessor

    check_json_files(directory, (*MODEL_JSON, *PROCESSOR_JSON, *TOKENIZER_JSON))
    try:
        with quiet_transformers():
            return AutoProcessor.from_pretrained(directory, **kwargs)
    except HarnessError:
        raise
    except Exception as exc:  # tokenizer, image processor and template loaders raise many types
        if not any((directory / name).is_file() for name in VOCABULARY_FILES):
            raise tokenizer_error(directory, exc) from exc
        raise DataError(f"cannot load the processor of checkpoint {directory}: {describe(exc)}") from exc
