"""The data that flows through a run: Sample -> Request -> Response -> TaskResult.

Samples, requests and responses are plain dataclasses (cheap, picklable for DataLoader workers).
What is written to disk (task results, metrics) is pydantic, so results.json has a typed schema.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field

IMAGE_PLACEHOLDER = "<image>"


@dataclass(frozen=True)
class ImageRef:
    """Where one image comes from: a file path, or encoded bytes embedded in a dataset (TSV base64)."""

    path: str = ""
    data: bytes = b""
    root: str = ""  # the data root a file path must stay inside ("": not checked)

    def identity(self) -> str:
        """A cheap identity for cache keys: path + size + mtime for files, a digest for bytes.

        A changed file gets a new identity (never a stale cache hit); a moved data root only costs a
        cache miss.
        """
        if self.data:
            return "sha256:" + hashlib.sha256(self.data).hexdigest()
        try:
            st = os.stat(self.path)
        except OSError:
            return f"missing:{self.path}"
        return f"file:{self.path}:{st.st_size}:{st.st_mtime_ns}"

    def open(self):
        """Decode to an RGB PIL image; raises OSError/ValueError on unreadable data."""
        from PIL import Image

        if self.data:
            img = Image.open(io.BytesIO(self.data))
        else:
            img = Image.open(self.checked_path())
        img.load()
        return img.convert("RGB")

    def checked_path(self) -> str:
        """The file path, once it is known to stay inside ``root`` (no ``..`` or absolute escape) and to name
        a regular file (a FIFO or a device would block or never end); OSError/ValueError otherwise."""
        if self.root:
            relative = os.path.relpath(os.path.normpath(self.path), os.path.normpath(self.root))
            if relative == ".." or relative.startswith(".." + os.sep) or os.path.isabs(relative):
                raise ValueError(f"{self.path}: the image path leaves the data root {self.root}")
        if not stat.S_ISREG(os.stat(self.path).st_mode):
            raise OSError(f"{self.path}: not a regular file")
        return self.path

    def describe(self) -> str:
        return self.path if self.path else f"<{len(self.data)} embedded bytes>"


@dataclass
class Sample:
    """One benchmark item as loaded from the official files. Images are referenced, never opened."""

    id: str  # unique within the task
    question: str  # the question text as the official question file gives it
    images: tuple[ImageRef, ...] = ()
    target: Any = None  # ground truth, JSON-serialisable
    metadata: dict[str, Any] = field(default_factory=dict)  # category, answer type, official prompt...


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 128
    temperature: float = 0.0  # 0 means greedy decoding
    stop: tuple[str, ...] = ()  # extra stop strings; the chat template's own stop is always used


@dataclass(frozen=True)
class Request:
    """What the model must do for one sample under a protocol.

    ``prompt`` is the user turn; each ``<image>`` in it marks where one image of ``images`` goes
    (LLaVA convention: ``"<image>\\nQuestion..."``). The adapter wraps it in its chat template
    unless ``raw`` is true, in which case the prompt is the full model input.
    """

    task: str
    sample_id: str
    prompt: str
    images: tuple[ImageRef, ...] = ()
    generation: GenerationSettings = GenerationSettings()
    system: str | None = None  # None: the chat template's default system message
    raw: bool = False

    def key(self) -> str:
        """Content hash used as the cache key (with the adapter fingerprint)."""
        payload = {
            "prompt": self.prompt,
            "images": [im.identity() for im in self.images],
            "generation": asdict(self.generation),
            "system": self.system,
            "raw": self.raw,
        }
        blob = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()
        return hashlib.sha256(blob).hexdigest()

    def describe(self) -> dict[str, Any]:
        """JSON form for sample logs."""
        return {
            "prompt": self.prompt,
            "images": [im.describe() for im in self.images],
            "generation": asdict(self.generation),
            "system": self.system,
            "raw": self.raw,
        }


@dataclass
class Response:
    """The model's answer to one request. An error is data: counted and reported, never raised."""

    text: str = ""
    error: str | None = None
    prompt_tokens: int = 0
    output_tokens: int = 0
    seconds: float = 0.0
    cached: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Response:
        fields = ("text", "error", "prompt_tokens", "output_tokens", "seconds", "cached")
        return cls(**{k: data[k] for k in fields if k in data})

    @classmethod
    def from_record(cls, data: Any) -> Response:
        """``from_json`` for a record read from a file: ValueError naming the field when ``data`` is not a
        response (not an object, a text that is no string, counts that are no numbers). Never coerces."""
        if not isinstance(data, dict):
            raise ValueError(f"'response' is {json_kind(data)}, not an object")
        if not isinstance(data.get("text", ""), str):
            raise ValueError(f"'response.text' is {json_kind(data['text'])}, not a string")
        if data.get("error") is not None and not isinstance(data["error"], str):
            raise ValueError(f"'response.error' is {json_kind(data['error'])}, not a string")
        for key in ("prompt_tokens", "output_tokens", "seconds"):
            value = data.get(key, 0)
            if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
                raise ValueError(f"'response.{key}' is {json_kind(value)}, not a number")
        return cls.from_json(data)


def json_kind(value: Any) -> str:
    """How a JSON value reads in an error message: ``null``, ``a number (5)``, ``a list``..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object" if isinstance(value, dict) else type(value).__name__


# ---------------------------------------------------------------------------------------------
# Scoring output (serialised into results.json)


class Metric(BaseModel):
    """One reported number with its uncertainty."""

    value: float
    stderr: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    n: int = 0
    higher_is_better: bool = True
    description: str = ""
    method: str = ""  # how stderr and the interval were computed (bootstrap over which clusters, or analytic)


class SampleScore(BaseModel):
    """How one sample was scored: the parsed answer, its score and whatever explains it."""

    sample_id: str
    parsed: Any = None
    score: float | None = None  # None when the sample does not enter the score on its own
    correct: bool | None = None
    parse_failed: bool = False
    detail: dict[str, Any] = Field(default_factory=dict)


_SCORE_FIELDS = frozenset(("sample_id", "parsed", "score", "correct", "detail"))
# BaseModel's instance slots, set through their descriptors as ``model_construct`` sets them
_set_dict = BaseModel.__dict__["__dict__"].__set__
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__


def trusted_sample_score(
    sample_id: str, parsed: Any, score: float, correct: bool, detail: dict[str, Any]
) -> SampleScore:
    """A ``SampleScore`` of values already of the field types, built as ``model_construct`` builds it (the same
    ``__dict__`` and fields set) without its per-field loop: a scorer makes one per sample, 214k for VQAv2 val."""
    made = object.__new__(SampleScore)
    _set_dict(made, {"sample_id": sample_id, "parsed": parsed, "score": score, "correct": correct,
                     "parse_failed": False, "detail": detail})  # fmt: skip
    _set_fields_set(made, set(_SCORE_FIELDS))
    _set_extra(made, None)
    _set_private(made, None)
    return made


class TaskResult(BaseModel):
    """What ``Task.score`` returns: headline metrics first, breakdowns, per-sample scores, counts."""

    task: str
    version: str
    metrics: dict[str, Metric]
    headline: list[str]
    breakdowns: dict[str, dict[str, Metric]] = Field(default_factory=dict)
    samples: list[SampleScore] = Field(default_factory=list)
    n_samples: int = 0
    n_errors: int = 0  # samples whose response is an error (unreadable image, model failure)
    n_parse_failures: int = 0  # answers the official parser could not read (scored as the official code does)
    n_missing: int = 0  # samples with no answer at all
    notes: list[str] = Field(default_factory=list)


class DataFile(BaseModel):
    """One file or folder a task needs under the data root."""

    path: str  # relative to the data root, '/'-separated
    kind: Literal["file", "dir"] = "file"
    # "score": the official scorer reads it (so a run does too); "run": only a run (images, prompt-only files)
    needed_for: Literal["score", "run"] = "score"
    description: str = ""
    source: str = ""  # where to get it
    alternatives: list[str] = Field(default_factory=list)  # other paths that serve instead (newer layouts)
