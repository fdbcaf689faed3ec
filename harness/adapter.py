"""The model adapter contract: how a model answers a batch of requests."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from harness.errors import UsageError
from harness.types import ImageRef, Request, Response

DEVICE_TYPES = ("cpu", "cuda", "mps")


class ModelInfo(BaseModel):
    """What results and the leaderboard say about the model."""

    spec: str  # as given on the command line, e.g. "tinyllava:/ckpt"
    name: str  # short display name
    path: str = ""
    is_demo: bool = False
    fingerprint: str = ""
    dtype: str = ""
    device: str = ""
    n_parameters: int | None = None
    llm: str = ""  # language model family, e.g. "llama", "phi"
    vision_tower: str = ""  # e.g. "siglip", "clip"
    template: str = ""
    details: dict[str, Any] = Field(default_factory=dict)


class ModelAdapter(ABC):
    """A model behind ``generate``. The runner owns ordering, batching, caching and progress;
    the adapter owns what happens inside one batch (preprocessing, templates, padding, stops)."""

    name: ClassVar[str]
    description: ClassVar[str] = ""

    @classmethod
    @abstractmethod
    def from_spec(cls, target: str, args: Mapping[str, str], device: str | None, seed: int) -> ModelAdapter:
        """Build from the part of ``--model NAME:TARGET`` after the colon and ``--model-args``."""

    @property
    @abstractmethod
    def fingerprint(self) -> str:
        """Checkpoint content hash + every setting that changes outputs; part of cache keys."""

    @property
    @abstractmethod
    def info(self) -> ModelInfo:
        ...

    def preparer(self) -> Callable[[Request], Any]:
        """A picklable callable doing the CPU work for one request (decode and preprocess images,
        tokenise), run in DataLoader workers. It must not hold the model.

        It raises on bad input (for example an unreadable image); the runner records the error for
        that sample and goes on.

        A preparer whose per-image work can be shared between requests of the same image implements
        ``ImageSharingPreparer`` as well: the runner then prepares each distinct image once per run.
        """
        return open_images

    def sort_key(self, request: Request) -> int:
        """Length estimate used to sort requests into batches of similar length."""
        return len(request.prompt)

    @abstractmethod
    def generate(self, requests: Sequence[Request], prepared: Sequence[Any]) -> list[Response]:
        """Answer a batch. Return one response per request, in order; errors go in ``Response.error``."""

    def close(self) -> None:
        """Release resources (GPU memory, connections)."""


@runtime_checkable
class ImageSharingPreparer(Protocol):
    """A preparer that splits its work into per-image work and the rest, so a run can share one image's
    preparation between all the requests that show it (about 6 per GQA image, 2 per MME image).

    ``image(ref)`` does the per-image work (decode, resize, normalise) and raises on a bad image; it depends only
    on the image and on ``image_settings`` (a string naming every setting that changes its value), never on
    the request. ``prepare(request, image)`` is ``preparer(request)`` with ``image`` standing in for
    ``self.image``: it must call ``image(ref)`` for each image it needs (it may raise what ``image`` raises),
    and must not change the values it returns (they are shared; copy before changing).
    ``preparer(request)`` must equal ``prepare(request, self.image)``.
    """

    image_settings: str

    def __call__(self, request: Request) -> Any: ...

    def image(self, ref: ImageRef) -> Any: ...

    def prepare(self, request: Request, image: Callable[[ImageRef], Any]) -> Any: ...


def open_images(request: Request) -> list[Any]:
    """Default preparation: the request's images decoded as RGB PIL images."""
    return [image.open() for image in request.images]


def generate_or_split(
    adapter: ModelAdapter,
    requests: Sequence[Request],
    values: Sequence[Any],
    on_call: Callable[[int], None] | None = None,
) -> list[Response]:
    """``adapter.generate`` on a batch; when the batch fails, each request alone, so one bad item costs only
    itself (a single request that fails becomes an error response). ``on_call(n)`` hears of every call."""
    if on_call is not None:
        on_call(len(requests))
    try:
        responses = adapter.generate(requests, values)
        if len(responses) != len(requests):
            raise RuntimeError(f"adapter returned {len(responses)} responses for {len(requests)} requests")
        return responses
    except Exception as exc:
        if len(requests) == 1:
            return [Response(error=f"{type(exc).__name__}: {exc}")]
    return [r for req, val in zip(requests, values) for r in generate_or_split(adapter, [req], [val], on_call)]


def check_device(device: str | None) -> str | None:
    """``device`` when this machine and torch build can run on it (None: the adapter's default).

    Otherwise a one-line UsageError naming ``--device``: a malformed device string, a CUDA device on a
    torch build without CUDA or with no GPU visible, a GPU index past the visible ones, MPS off Apple silicon.
    """
    if device is None:
        return None
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        parsed = None
    if parsed is None or parsed.type not in DEVICE_TYPES:
        raise UsageError(f"--device {device}: not a supported device; use cpu, cuda, cuda:N or mps")
    if parsed.type == "cuda":
        if torch.version.cuda is None and getattr(torch.version, "hip", None) is None:
            raise UsageError(
                f"--device cuda: this torch build has no CUDA (torch {torch.__version__}); install a CUDA build "
                "(see README) or use --device cpu"
            )
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise UsageError(
                "--device cuda: no CUDA device is visible (check the driver and CUDA_VISIBLE_DEVICES) "
                "or use --device cpu"
            )
        if parsed.index is not None and parsed.index >= count:
            raise UsageError(f"--device {device}: only {count} CUDA device(s) are visible (cuda:0 to cuda:{count - 1})")
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(
            "--device mps: MPS is not available here (it needs Apple silicon and a macOS torch build); "
            "use --device cpu"
        )
    return device
