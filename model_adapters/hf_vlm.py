"""Any transformers image-text-to-text model: ``--model hf:PATH_OR_HUB_ID``.

The model comes from ``AutoModelForImageTextToText`` and its inputs from ``AutoProcessor`` with the
checkpoint's own chat template (never a guessed one). Batches are left-padded, decoding is greedy
unless a request asks for a temperature, and only the new tokens are decoded.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from harness.adapter import ModelAdapter, ModelInfo, check_device
from harness.errors import HarnessError, UsageError
from harness.types import IMAGE_PLACEHOLDER, ImageRef, Request, Response
from model_adapters.fingerprint import fingerprint as checkpoint_fingerprint
from model_adapters.hf_messages import request_messages
from model_adapters.loading import load_pretrained
from model_adapters.loading import load_processor as load_checked_processor

ADAPTER_VERSION = "hf-1"
MODEL_ARGS = ("dtype", "attn", "max_pixels")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
ATTN_IMPLEMENTATIONS = ("sdpa", "eager", "flash_attention_2")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def resolve_checkpoint(target: str) -> Path:
    """A local checkpoint directory, or a hub repository's snapshot (the local HF cache when offline)."""
    path = Path(target).expanduser()
    if path.is_dir():
        return path.resolve()
    if path.exists() or not _HUB_ID.match(target):
        raise HarnessError(f"--model hf:{target}: not a checkpoint directory or a hub id (owner/name)")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(target))
    except Exception as exc:  # hub errors have many types; all mean "cannot get it"
        raise HarnessError(
            f"--model hf:{target}: cannot fetch it from the Hugging Face hub ({type(exc).__name__})"
        ) from exc


@dataclass(frozen=True)
class Settings:
    """Load-time choices that change outputs."""

    dtype: str
    attn: str
    max_pixels: int | None
    device: str


def parse_settings(args: Mapping[str, str], device: str) -> Settings:
    """Validate ``--model-args``; fp32 on CPU and bf16 on CUDA unless ``dtype`` says otherwise."""
    unknown = sorted(set(args) - set(MODEL_ARGS))
    if unknown:
        raise UsageError(
            f"unknown --model-args key(s) {', '.join(unknown)} for hf; valid keys: {', '.join(MODEL_ARGS)}"
        )
    dtype = args.get("dtype", "bfloat16" if device.startswith("cuda") else "float32")
    if dtype not in DTYPES:
        raise UsageError(f"--model-args dtype={dtype} is not valid; choose one of {', '.join(DTYPES)}")
    attn = args.get("attn", "sdpa")
    if attn not in ATTN_IMPLEMENTATIONS:
        raise UsageError(f"--model-args attn={attn} is not valid; choose one of {', '.join(ATTN_IMPLEMENTATIONS)}")
    max_pixels = None
    if "max_pixels" in args:
        try:
            max_pixels = int(args["max_pixels"])
        except ValueError:
            max_pixels = 0
        if max_pixels < 1:
            raise UsageError(f"--model-args max_pixels={args['max_pixels']} must be a positive integer")
    return Settings(dtype=dtype, attn=attn, max_pixels=max_pixels, device=device)


def set_max_pixels(image_processor: Any, max_pixels: int) -> None:
    """Cap the pixels per image on processors that resize to a pixel budget (Qwen2-VL style).

    transformers 5 keeps the budget in ``size.longest_edge`` (a pixel count for these processors);
    earlier releases in a ``max_pixels`` attribute.
    """
    kwargs = getattr(getattr(type(image_processor), "valid_kwargs", None), "__annotations__", {})
    if "max_pixels" not in kwargs and not hasattr(image_processor, "max_pixels"):
        raise UsageError(
            f"--model-args max_pixels: the {type(image_processor).__name__} image processor has no pixel budget"
        )
    if hasattr(image_processor, "max_pixels"):
        image_processor.max_pixels = max_pixels
    size = getattr(image_processor, "size", None)
    if isinstance(size, dict):
        image_processor.size = {**size, "longest_edge": max_pixels}
    elif dataclasses.is_dataclass(size) and hasattr(size, "longest_edge"):
        image_processor.size = dataclasses.replace(size, longest_edge=max_pixels)


def load_processor(path: Path, settings: Settings) -> Any:
    """The checkpoint's processor, left-padding, with a chat template; errors name the checkpoint."""
    processor = load_checked_processor(path)
    if not hasattr(processor, "image_processor") or not hasattr(processor, "tokenizer"):
        raise HarnessError(
            f"checkpoint {path} has no multimodal processor (processor_config.json with an image processor)"
        )
    if not getattr(processor, "chat_template", None):
        raise HarnessError(
            f"checkpoint {path} has no chat template (chat_template.jinja or chat_template in processor_config.json); "
            "the hf adapter renders prompts only with the checkpoint's own template"
        )
    processor.tokenizer.padding_side = "left"
    if settings.max_pixels is not None:
        set_max_pixels(processor.image_processor, settings.max_pixels)
    return processor


def dtype_kwarg(dtype: str) -> dict[str, torch.dtype]:
    """``dtype=`` for from_pretrained; transformers before 4.56 calls it ``torch_dtype``."""
    import transformers

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return {"dtype" if (major, minor) >= (4, 56) else "torch_dtype": DTYPES[dtype]}


def load_model(path: Path, settings: Settings) -> Any:
    """The model in eval mode on the chosen device and dtype; weights that would stay random are an error."""
    from transformers import AutoModelForImageTextToText
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model = load_pretrained(
        AutoModelForImageTextToText, path, attn_implementation=settings.attn, **dtype_kwarg(settings.dtype)
    )
    return model.to(settings.device).eval()


def stop_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """The generation config's EOS id(s) (a chat model's end-of-turn) plus the tokenizer's EOS."""
    found = getattr(model.generation_config, "eos_token_id", None)
    ids = list(found) if isinstance(found, (list, tuple)) else [] if found is None else [found]
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    return list(dict.fromkeys(int(i) for i in ids))


def trim_at_stop(tokens: Sequence[int], limit: int, stop_ids: Sequence[int]) -> list[int]:
    """The first ``limit`` new tokens, ending at (and including) the first stop token."""
    kept: list[int] = []
    for token in list(tokens)[:limit]:
        kept.append(int(token))
        if token in stop_ids:
            break
    return kept


def cut_at_stops(text: str, stops: Sequence[str]) -> str:
    """The text before the earliest stop string."""
    cut = len(text)
    for stop in stops:
        if stop and (at := text.find(stop)) != -1:
            cut = min(cut, at)
    return text[:cut]


@dataclass
class ChatPreparer:
    """Request -> {"text": the rendered chat prompt, "images": decoded RGB images}. Picklable."""

    processor: Any

    def text(self, request: Request) -> str:
        if request.raw:
            return request.prompt
        return str(
            self.processor.apply_chat_template(request_messages(request), tokenize=False, add_generation_prompt=True)
        )

    image_settings = "decoded-rgb"  # the processor runs on the batch in generate; only decoding is shared

    def image(self, ref: ImageRef) -> Any:
        return ref.open()

    def prepare(self, request: Request, image: Callable[[ImageRef], Any]) -> dict[str, Any]:
        n_slots = request.prompt.count(IMAGE_PLACEHOLDER)
        if n_slots != len(request.images):
            raise ValueError(
                f"prompt has {n_slots} {IMAGE_PLACEHOLDER} placeholder(s) but {len(request.images)} image(s)"
            )
        return {"text": self.text(request), "images": [image(ref) for ref in request.images]}

    def __call__(self, request: Request) -> dict[str, Any]:
        return self.prepare(request, self.image)


class HFVLMAdapter(ModelAdapter):
    """A transformers VLM with its processor's chat template; batched, left-padded, greedy."""

    name = "hf"
    description = (
        "transformers image-text-to-text models (AutoModelForImageTextToText + the checkpoint's chat template)"
    )

    def __init__(self, spec: str, path: Path, name: str, settings: Settings, seed: int) -> None:
        self.path = path
        self.settings = settings
        self.seed = seed
        self.processor = load_processor(path, settings)
        self.model = load_model(path, settings)
        self.tokenizer = self.processor.tokenizer
        self.stop_ids = stop_token_ids(self.model, self.tokenizer)
        pad = self.tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else self.stop_ids[0])
        self._preparer = ChatPreparer(self.processor)
        self._fingerprint = checkpoint_fingerprint(path, self.fingerprint_settings())
        config = self.model.config
        self._info = ModelInfo(
            spec=spec,
            name=name,
            path=str(path),
            fingerprint=self._fingerprint,
            dtype=settings.dtype,
            device=str(self.model.device),
            n_parameters=sum(p.numel() for p in self.model.parameters()),
            llm=str(getattr(getattr(config, "text_config", None), "model_type", "")),
            vision_tower=str(getattr(getattr(config, "vision_config", None), "model_type", "")),
            template="checkpoint chat template",
            details={
                "architecture": type(self.model).__name__,
                "model_type": config.model_type,
                "processor": type(self.processor).__name__,
                "attn_implementation": settings.attn,
                "max_pixels": settings.max_pixels,
                "adapter_version": ADAPTER_VERSION,
            },
        )

    @classmethod
    def from_spec(cls, target: str, args: Mapping[str, str], device: str | None, seed: int) -> HFVLMAdapter:
        device = check_device(device)
        path = resolve_checkpoint(target)
        settings = parse_settings(args, device or ("cuda" if torch.cuda.is_available() else "cpu"))
        local = Path(target).expanduser().exists()
        return cls(f"{cls.name}:{target}", path, path.name if local else target.rsplit("/", 1)[-1], settings, seed)

    def fingerprint_settings(self) -> dict[str, Any]:
        s = self.settings
        return {"adapter_version": ADAPTER_VERSION, "dtype": s.dtype, "attn": s.attn, "max_pixels": s.max_pixels}

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    @property
    def info(self) -> ModelInfo:
        return self._info

    def preparer(self) -> ChatPreparer:
        return self._preparer

    def generate(self, requests: Sequence[Request], prepared: Sequence[Any]) -> list[Response]:
        """Answer a batch; requests with different temperatures are generated separately."""
        groups: dict[float, list[int]] = {}
        for i, request in enumerate(requests):
            groups.setdefault(float(request.generation.temperature), []).append(i)
        responses: list[Response] = [Response(error="no response")] * len(requests)
        for temperature, indices in groups.items():
            answers = self._generate_group([requests[i] for i in indices], [prepared[i] for i in indices], temperature)
            for i, answer in zip(indices, answers):
                responses[i] = answer
        return responses

    def model_inputs(self, prepared: Sequence[Mapping[str, Any]]) -> Any:
        """One processor call for the batch: left-padded ids, pixel tensors in the model's dtype."""
        texts = [p["text"] for p in prepared]
        images = [list(p["images"]) for p in prepared]
        bos = self.tokenizer.bos_token
        # a template that writes BOS itself must not get a second one from the tokenizer
        add_special = not (bos and all(t.startswith(bos) for t in texts))
        extra: dict[str, Any] = {"images": images} if any(images) else {}
        inputs = self.processor(text=texts, padding=True, return_tensors="pt", add_special_tokens=add_special, **extra)
        device, dtype = self.model.device, self.model.dtype
        return {k: v.to(device, dtype) if v.is_floating_point() else v.to(device) for k, v in inputs.items()}

    def _generate_group(
        self, requests: Sequence[Request], prepared: Sequence[Mapping[str, Any]], temperature: float
    ) -> list[Response]:
        start = time.perf_counter()
        inputs = self.model_inputs(prepared)
        sampling: dict[str, Any] = {"do_sample": False}
        if temperature > 0:
            torch.manual_seed(self.seed)
            sampling = {"do_sample": True, "temperature": temperature}
        with torch.inference_mode():
            output = self.model.generate(
                **inputs,
                max_new_tokens=max(r.generation.max_new_tokens for r in requests),
                num_beams=1,
                eos_token_id=self.stop_ids,
                pad_token_id=self.pad_id,
                **sampling,
            )
        width = inputs["input_ids"].shape[1]
        new_tokens = output[:, width:].tolist()
        prompt_lengths = inputs["attention_mask"].sum(dim=1).tolist()
        seconds = (time.perf_counter() - start) / len(requests)
        return [
            self._response(request, tokens, int(n_prompt), seconds)
            for request, tokens, n_prompt in zip(requests, new_tokens, prompt_lengths)
        ]

    def _response(self, request: Request, tokens: Sequence[int], n_prompt: int, seconds: float) -> Response:
        kept = trim_at_stop(tokens, request.generation.max_new_tokens, self.stop_ids)
        text = self.tokenizer.decode(kept, skip_special_tokens=True)
        text = cut_at_stops(text, request.generation.stop).strip()
        return Response(text=text, prompt_tokens=n_prompt, output_tokens=len(kept), seconds=seconds)

    def close(self) -> None:
        self.model = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
