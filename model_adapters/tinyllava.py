"""TinyLLaVA checkpoints in every format, run as transformers' ``LlavaForConditionalGeneration``.

HF Llava checkpoints load directly; legacy TinyLLaVABench, TinyLLaVA Factory, projector-only and LoRA
checkpoints are converted in memory first (``model_adapters.formats``), reproducing each format's quirks.
Inference follows LLaVA's eval code: the prompt is rendered with the checkpoint's conversation template,
split on ``<image>`` and tokenised chunk by chunk (``tokenizer_image_token``), images are optionally padded
to a square with the mean colour (``process_images``), and decoding is greedy with the template's stop
string. Batches are left-padded; positions come from the attention mask, so padding never changes answers.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.adapter import ModelAdapter, ModelInfo, check_device
from harness.errors import HarnessError, UsageError
from harness.types import IMAGE_PLACEHOLDER, ImageRef, Request, Response
from model_adapters.fingerprint import file_digests
from model_adapters.fingerprint import fingerprint as checkpoint_fingerprint
from model_adapters.formats import FORMATS, Converted, Detected, detect
from model_adapters.formats import load as load_converted
from model_adapters.formats.preview import declared_settings
from model_adapters.formats.runtime import (
    attach_lm_head_bias,
    build_model,
    converted_from_original,
    origin_format,
    read_lm_head_bias,
    scale_image_features_as_transformers_4,
)
from model_adapters.loading import check_vocabulary, describe, load_pretrained, load_tokenizer, quiet_transformers
from model_adapters.templates import ChatTemplate, get_template, template_names

ADAPTER_VERSION = "tinyllava-1"
CONVERTER_VERSION = "formats-1"  # enters the fingerprint of converted (non-HF-Llava) checkpoints
MODEL_ARGS = ("conv", "dtype", "image_aspect_ratio", "attn", "base", "tower")
PATH_ARGS = ("base", "tower")  # content enters the fingerprint, not the path
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
ASPECTS = ("pad", "square")
ATTN_IMPLEMENTATIONS = ("sdpa", "eager", "flash_attention_2")
TEMPLATE_FIELDS = ("conv_mode", "conv_version", "conv_template")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


# ---------------------------------------------------------------------------------------------
# Locating and checking a checkpoint


def resolve_checkpoint(target: str) -> tuple[Path, bool]:
    """(checkpoint directory, is_demo) for a ``--model tinyllava:TARGET`` target."""
    if target == "demo":
        from model_adapters.demo_model import ensure_demo_checkpoint

        return ensure_demo_checkpoint(), True
    path = Path(target).expanduser()
    if path.is_dir():
        return path.resolve(), False
    if not path.exists() and _HUB_ID.match(target):
        return _download(target), False
    raise HarnessError(f"not a checkpoint directory: {target}")


def _download(repo_id: str) -> Path:
    """A hub repository's snapshot (served from the local HF cache when offline)."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id))
    except Exception as exc:  # hub errors have many types; all mean "cannot get it"
        raise HarnessError(
            f"not a checkpoint directory: {repo_id} (and it could not be fetched from the Hugging Face hub: "
            f"{type(exc).__name__}: {exc})"
        ) from exc


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object file; HarnessError naming the file when it is missing or malformed."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise HarnessError(f"{path} not found: not a Hugging Face checkpoint directory") from None
    except (OSError, ValueError) as exc:
        raise HarnessError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise HarnessError(f"{path} is not a JSON object")
    return data


# ---------------------------------------------------------------------------------------------
# Settings from --model-args and the checkpoint's config


@dataclass(frozen=True)
class Settings:
    """Everything chosen at load time that changes outputs."""

    template: ChatTemplate
    dtype: str
    image_aspect_ratio: str
    attn: str
    device: str


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _choice(args: Mapping[str, str], key: str, valid: Sequence[str], default: str) -> str:
    value = args.get(key, default)
    if value not in valid:
        raise UsageError(f"--model-args {key}={value} is not valid; choose one of {', '.join(valid)}")
    return value


def choose_template(args: Mapping[str, str], config: Mapping[str, Any], path: Path) -> ChatTemplate:
    """The ``conv`` argument, else the template the checkpoint declares; never a guess."""
    if "conv" in args:
        return get_template(args["conv"])
    for field in TEMPLATE_FIELDS:
        if config.get(field):
            return get_template(str(config[field]))
    raise HarnessError(
        f"checkpoint {path} declares no chat template; pass --model-args conv=NAME "
        f"(one of {', '.join(template_names())})"
    )


def _default_attn(device: str, dtype: str) -> str:
    """flash_attention_2 where it can run (CUDA, half precision, flash_attn installed), else sdpa."""
    half = dtype in ("bfloat16", "float16")
    if device.startswith("cuda") and half and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def check_model_args(args: Mapping[str, str], valid: Sequence[str] = MODEL_ARGS) -> None:
    unknown = sorted(set(args) - set(valid))
    if unknown:
        raise UsageError(
            f"unknown --model-args key(s) {', '.join(unknown)} for tinyllava; valid keys: {', '.join(valid)}"
        )


# The dtype each original evaluation ran its checkpoints in on a GPU, under its own loader: TinyLLaVABench's
# builder (as LLaVA's) loads float16; TinyLLaVA Factory's load_pretrained_model loads float32 (the float16 it sets
# is never passed on) and casts LoRA checkpoints to float16. HF Llava checkpoints have no such loader: bfloat16.
ORIGINAL_CUDA_DTYPES = {"legacy": "float16", "projector-only": "float16", "lora": "float16", "factory": "float32"}


def default_dtype(device: str, origin: str) -> str:
    """float32 on CPU; on CUDA the dtype the original evaluation of a checkpoint from ``origin`` used."""
    if not device.startswith("cuda"):
        return "float32"
    return ORIGINAL_CUDA_DTYPES.get(origin, "bfloat16")


def parse_settings(
    args: Mapping[str, str], config: Mapping[str, Any], path: Path, device: str, origin: str = "hf_llava"
) -> Settings:
    """Validate ``--model-args`` and fill the defaults from the device and the checkpoint (``origin``: the format its
    weights come from, which sets the default dtype on CUDA)."""
    check_model_args(args)
    aspect_default = str(config.get("image_aspect_ratio") or "square")
    if "image_aspect_ratio" not in args and aspect_default not in ASPECTS:
        raise HarnessError(
            f"checkpoint {path} uses image_aspect_ratio '{aspect_default}', which is not supported "
            f"(supported: {', '.join(ASPECTS)})"
        )
    dtype = _choice(args, "dtype", list(DTYPES), default_dtype(device, origin))
    return Settings(
        template=choose_template(args, config, path),
        dtype=dtype,
        image_aspect_ratio=_choice(args, "image_aspect_ratio", ASPECTS, aspect_default),
        attn=_choice(args, "attn", ATTN_IMPLEMENTATIONS, _default_attn(device, dtype)),
        device=device,
    )


# ---------------------------------------------------------------------------------------------
# Tokenizer, image processor and prompt preparation (CPU side, runs in DataLoader workers)


def load_image_processor(path: Path) -> Any:
    """The checkpoint's image processor; CLIP and SigLIP get the PIL-backed classes (LLaVA's resizing)."""
    from transformers import AutoImageProcessor

    if (path / "preprocessor_config.json").is_file():
        config = read_json(path / "preprocessor_config.json")
    elif (path / "processor_config.json").is_file():
        config = read_json(path / "processor_config.json").get("image_processor") or {}
    else:
        raise HarnessError(f"checkpoint {path} has no preprocessor_config.json (image processor settings)")
    processor = image_processor_from_dict(config)
    if processor is not None:
        return processor
    try:
        with quiet_transformers():
            return AutoImageProcessor.from_pretrained(path)
    except Exception as exc:  # image processor loaders raise many types
        raise HarnessError(f"cannot load the image processor of checkpoint {path}: {describe(exc)}") from exc


def image_processor_from_dict(config: Mapping[str, Any]) -> Any:
    """A CLIP, SigLIP or Llava (a converted ``pad`` checkpoint's) image processor, PIL-backed, from its settings;
    None for other kinds."""
    kind = str(config.get("image_processor_type", "")).removesuffix("Fast").removesuffix("Pil")
    if kind in ("CLIPImageProcessor", "SiglipImageProcessor", "LlavaImageProcessor"):
        return _pil_image_processor_class(kind).from_dict(dict(config))
    return None


def _pil_image_processor_class(kind: str) -> Any:
    """``{kind}Pil`` (transformers 5); before 5 the plain class is the PIL-backed one."""
    import transformers

    return getattr(transformers, kind + "Pil", None) or getattr(transformers, kind)


def tokenizer_image_token(
    prompt: str,
    tokenizer: Any,
    image_token_id: int,
    n_image_tokens: int,
    encode: Callable[[str], list[int]] | None = None,
) -> list[int]:
    """LLaVA's ``tokenizer_image_token`` with the image token repeated once per image feature.

    Each ``<image>``-separated chunk is tokenised on its own (default special tokens); a BOS that the
    first chunk starts with is kept once and stripped from later chunks. ``encode`` may stand in for
    ``tokenizer(chunk).input_ids`` (a memoized version of it).
    """
    encode = encode or (lambda chunk: tokenizer(chunk).input_ids)
    chunks = [encode(chunk) for chunk in prompt.split(IMAGE_PLACEHOLDER)]
    bos = tokenizer.bos_token_id
    keep_bos = bos is not None and bool(chunks[0]) and chunks[0][0] == bos
    ids: list[int] = [bos] if keep_bos else []
    for i, chunk in enumerate(chunks):
        if i > 0:
            ids.extend([image_token_id] * n_image_tokens)
        ids.extend(chunk[1:] if keep_bos and chunk and chunk[0] == bos else chunk)
    return ids


def expand_to_square(image: Any, background: tuple[int, ...]) -> Any:
    """LLaVA's ``expand2square``: the image centred on a square canvas of the background colour."""
    from PIL import Image

    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    canvas = Image.new(image.mode, (side, side), background)
    canvas.paste(image, ((side - width) // 2, (side - height) // 2))
    return canvas


@dataclass
class LlavaPreparer:
    """Request -> {"input_ids": list[int], "pixel_values": float32 array (n_images, 3, H, W) or None}.

    Picklable, holds no model: the tokenizer, the image processor and a few numbers.
    """

    tokenizer: Any
    image_processor: Any
    template: ChatTemplate
    image_token_id: int
    n_image_tokens: int
    pad_to_square: bool

    def prompt_text(self, request: Request) -> str:
        if request.raw:
            return request.prompt
        return self.template.render(request.prompt, request.system)

    def input_ids(self, request: Request) -> list[int]:
        return tokenizer_image_token(
            self.prompt_text(request), self.tokenizer, self.image_token_id, self.n_image_tokens, self._encode
        )

    def _encode(self, chunk: str) -> list[int]:
        """``tokenizer(chunk).input_ids``, memoized: the template's text before ``<image>`` repeats."""
        cache = self.__dict__.setdefault("_chunk_ids", {})
        if chunk not in cache:
            if len(cache) >= 4096:
                cache.clear()
            cache[chunk] = list(self.tokenizer(chunk).input_ids)
        return list(cache[chunk])

    def pixel_values(self, images: Sequence[Any]) -> np.ndarray:
        if self.pad_to_square:
            background = tuple(int(x * 255) for x in self.image_processor.image_mean)
            images = [expand_to_square(image, background) for image in images]
        out = self.image_processor(list(images), return_tensors="np")["pixel_values"]
        return np.asarray(out, dtype=np.float32)

    @property
    def image_settings(self) -> str:
        """What changes an image's pixels: the processor's settings and the square padding."""
        if "_image_settings" not in self.__dict__:
            config = json.dumps(self.image_processor.to_dict(), sort_keys=True, default=str)
            digest = hashlib.sha256(config.encode()).hexdigest()[:16]
            self.__dict__["_image_settings"] = f"llava-pixels:pad={self.pad_to_square}:{digest}"
        return str(self.__dict__["_image_settings"])

    def image(self, ref: ImageRef) -> np.ndarray:
        """One image decoded and preprocessed: float32 (3, H, W), the same as its row of ``pixel_values``."""
        return self.pixel_values([ref.open()])[0]

    def prepare(self, request: Request, image: Callable[[ImageRef], np.ndarray]) -> dict[str, Any]:
        n_slots = request.prompt.count(IMAGE_PLACEHOLDER)
        if n_slots != len(request.images):
            raise ValueError(
                f"prompt has {n_slots} {IMAGE_PLACEHOLDER} placeholder(s) but {len(request.images)} image(s)"
            )
        pixels = [image(ref) for ref in request.images]
        return {
            "input_ids": self.input_ids(request),
            "pixel_values": np.stack(pixels) if pixels else None,  # a copy: the image values may be shared
        }

    def __call__(self, request: Request) -> dict[str, Any]:
        return self.prepare(request, self.image)


# ---------------------------------------------------------------------------------------------
# Model loading


def load_model(path: Path, settings: Settings) -> Any:
    """The Llava model in eval mode on the chosen device and dtype (with a stored lm_head bias re-attached).

    Damaged weight files, and weights missing or shaped unlike config.json, are one-line errors.
    """
    from transformers import LlavaForConditionalGeneration
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the run has its own progress display
    model = load_pretrained(
        LlavaForConditionalGeneration, path, attn_implementation=settings.attn, **_dtype_kwarg(settings.dtype)
    )
    bias = read_lm_head_bias(path)
    if bias is not None:
        attach_lm_head_bias(model, bias)
    return model.to(settings.device).eval()


def _dtype_kwarg(dtype: str) -> dict[str, torch.dtype]:
    """``dtype=`` for from_pretrained; transformers before 4.56 calls it ``torch_dtype``."""
    import transformers

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return {"dtype" if (major, minor) >= (4, 56) else "torch_dtype": DTYPES[dtype]}


def image_token_id(config: Any) -> int:
    value = getattr(config, "image_token_id", None)
    if value is None:
        value = getattr(config, "image_token_index", None)
    if value is None:
        raise HarnessError("the checkpoint config has neither image_token_index nor image_token_id")
    return int(value)


def count_image_tokens(model: Any, image_processor: Any) -> int:
    """Image features per image, measured by running the vision path once on a blank image."""
    from PIL import Image

    size = int(model.config.vision_config.image_size)
    blank = Image.new("RGB", (size, size))
    pixels = torch.from_numpy(np.asarray(image_processor([blank], return_tensors="np")["pixel_values"]))
    with torch.inference_mode():
        features = model.get_image_features(
            pixel_values=pixels.to(model.device, model.dtype),
            vision_feature_layer=model.config.vision_feature_layer,
            vision_feature_select_strategy=model.config.vision_feature_select_strategy,
        )
    if hasattr(features, "pooler_output"):  # transformers >= 5 returns an output object
        features = features.pooler_output
    return int(features[0].shape[-2])


def pad_token_id(tokenizer: Any, config: Any) -> int:
    """The tokenizer's pad id, else the config's, else EOS."""
    for value in (
        tokenizer.pad_token_id,
        getattr(config.text_config, "pad_token_id", None),
        getattr(config, "pad_token_id", None),
        tokenizer.eos_token_id,
    ):
        if value is not None:
            return int(value)
    raise HarnessError("the checkpoint defines no pad or EOS token")


def stop_token_ids(tokenizer: Any, template: ChatTemplate) -> list[int]:
    """EOS plus the template's stop string when it is a single token of this vocabulary."""
    ids = [] if tokenizer.eos_token_id is None else [int(tokenizer.eos_token_id)]
    stop_ids = tokenizer(template.stop, add_special_tokens=False).input_ids
    if len(stop_ids) == 1 and stop_ids[0] not in ids and stop_ids[0] != tokenizer.unk_token_id:
        ids.append(int(stop_ids[0]))
    return ids


# ---------------------------------------------------------------------------------------------
# Batch helpers


def left_pad(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask), both [batch, longest], padded on the left."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            ids[i, width - len(row) :] = torch.tensor(row, dtype=torch.long)
            mask[i, width - len(row) :] = 1
    return ids, mask


def cut_at_stops(text: str, stops: Sequence[str]) -> str:
    """The text before the earliest stop string."""
    cut = len(text)
    for stop in stops:
        if stop and (at := text.find(stop)) != -1:
            cut = min(cut, at)
    return text[:cut]


def trim_new_tokens(tokens: Sequence[int], limit: int, stop_ids: Sequence[int]) -> list[int]:
    """New tokens up to the request's own limit, ending at (and including) the first stop token."""
    kept: list[int] = []
    for token in list(tokens)[:limit]:
        kept.append(int(token))
        if token in stop_ids:
            break
    return kept


def _plain_args(args: Mapping[str, str]) -> dict[str, str]:
    """``--model-args`` without the path arguments (they select files, not settings)."""
    return {k: v for k, v in args.items() if k not in PATH_ARGS}


def _settings_config(detected: Detected, args: Mapping[str, str]) -> Mapping[str, Any]:
    """The config fields settings default from: the HF Llava config, else what the format declares."""
    if detected.format == "hf_llava":
        given = [key for key in PATH_ARGS if key in args]
        if given:
            names = ", ".join(f"{key}=" for key in given)
            raise UsageError(f"--model-args {names} is not used for HF Llava checkpoints (only for converted formats)")
        return detected.config
    return declared_settings(detected)


# ---------------------------------------------------------------------------------------------
# The adapter


class TinyLlavaAdapter(ModelAdapter):
    """TinyLLaVA in any checkpoint format: greedy decoding, LLaVA prompt and image handling."""

    name = "tinyllava"
    description = (
        "TinyLLaVA / LLaVA checkpoints: HF Llava, legacy TinyLLaVABench, TinyLLaVA Factory, projector-only "
        "and LoRA (base=PATH), run as LlavaForConditionalGeneration"
    )

    def __init__(
        self,
        spec: str,
        path: Path,
        name: str,
        is_demo: bool,
        settings: Settings,
        seed: int,
        converted: Converted | None = None,
    ) -> None:
        self.path = path
        self.settings = settings
        self.seed = seed
        self.format = converted.format if converted is not None else "hf_llava"
        self._extra_sources = {
            label: file_digests(root) for label, root in (converted.sources if converted else {}).items()
            if root != path
        }
        if converted is None:  # tokenizer and image processor first: their errors come before the weights load
            self.tokenizer = load_tokenizer(path)
            image_processor = load_image_processor(path)
            self.model = load_model(path, settings)
            check_vocabulary(self.tokenizer, self.model, path, path)
        else:
            self.model = build_model(converted, DTYPES[settings.dtype], settings.attn, settings.device)
            self.tokenizer = converted.tokenizer
            image_processor = image_processor_from_dict(converted.image_processor)
        config = self.model.config
        from_original = converted is not None or converted_from_original(config.to_dict())
        self._scaled_image_features = from_original and scale_image_features_as_transformers_4(self.model)
        self._preparer = LlavaPreparer(
            tokenizer=self.tokenizer,
            image_processor=image_processor,
            template=settings.template,
            image_token_id=image_token_id(config),
            n_image_tokens=count_image_tokens(self.model, image_processor),
            pad_to_square=settings.image_aspect_ratio == "pad",
        )
        self.pad_id = pad_token_id(self.tokenizer, config)
        self.stop_ids = stop_token_ids(self.tokenizer, settings.template)
        self._fingerprint = checkpoint_fingerprint(path, self.fingerprint_settings())
        self._info = ModelInfo(
            spec=spec,
            name=name,
            path=str(path),
            is_demo=is_demo,
            fingerprint=self._fingerprint,
            dtype=settings.dtype,
            device=str(self.model.device),
            n_parameters=sum(p.numel() for p in self.model.parameters()),
            llm=getattr(config.text_config, "model_type", ""),
            vision_tower=getattr(config.vision_config, "model_type", ""),
            template=settings.template.name,
            details={
                "image_aspect_ratio": settings.image_aspect_ratio,
                "attn_implementation": settings.attn,
                "image_tokens": self._preparer.n_image_tokens,
                "adapter_version": ADAPTER_VERSION,
                "format": FORMATS[self.format],
                **({"notes": list(converted.notes)} if converted is not None and converted.notes else {}),
            },
        )

    @classmethod
    def from_spec(cls, target: str, args: Mapping[str, str], device: str | None, seed: int) -> TinyLlavaAdapter:
        device = check_device(device)
        path, is_demo = resolve_checkpoint(target)
        check_model_args(args)
        detected = detect(path)
        origin = origin_format(detected.format, detected.config)
        settings = parse_settings(
            _plain_args(args), _settings_config(detected, args), path, device or default_device(), origin
        )
        converted = None
        if detected.format != "hf_llava":
            converted = load_converted(path, detected, args.get("base"), args.get("tower"))
        downloaded = not Path(target).expanduser().exists()  # a hub id: its snapshot folder is a commit hash
        name = "demo" if is_demo else Path(target).name if downloaded else path.name
        return cls(f"{cls.name}:{target}", path, name, is_demo, settings, seed, converted)

    def fingerprint_settings(self) -> dict[str, Any]:
        """The adapter settings that enter the fingerprint (with the checkpoint's file digests)."""
        s = self.settings
        settings: dict[str, Any] = {
            "adapter_version": ADAPTER_VERSION,
            "template": s.template.name,
            "dtype": s.dtype,
            "image_aspect_ratio": s.image_aspect_ratio,
            "attn": s.attn,
        }
        if self.format != "hf_llava":  # converted in memory: the converter and the base/tower contents count
            settings.update(format=self.format, converter_version=CONVERTER_VERSION, sources=self._extra_sources)
        if self._scaled_image_features:  # answers cached before the factor was restored are not reused
            settings["image_features"] = "x sqrt(hidden_size), as transformers 4.x's language model did"
        return settings

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    @property
    def info(self) -> ModelInfo:
        return self._info

    def preparer(self) -> LlavaPreparer:
        return self._preparer

    def sort_key(self, request: Request) -> int:
        """Characters of the prompt plus a rough character-equivalent for each image."""
        return len(request.prompt) + 4 * self._preparer.n_image_tokens * len(request.images)

    def generate(self, requests: Sequence[Request], prepared: Sequence[Any]) -> list[Response]:
        """Answer a batch. A malformed prepared item becomes its own error response; a model failure
        raises, so the runner can retry the requests one by one."""
        responses: list[Response | None] = [None] * len(requests)
        by_temperature: dict[float, list[int]] = {}
        for i, request in enumerate(requests):
            problem = self.check_prepared(prepared[i])
            if problem:
                responses[i] = Response(error=problem)
            else:
                by_temperature.setdefault(float(request.generation.temperature), []).append(i)
        for temperature, indices in by_temperature.items():
            answers = self._generate_group([requests[i] for i in indices], [prepared[i] for i in indices], temperature)
            for i, answer in zip(indices, answers):
                responses[i] = answer
        return [r if r is not None else Response(error="no response") for r in responses]

    def check_prepared(self, item: Any) -> str | None:
        """Why a prepared item cannot be generated from (image tokens and pixel rows disagree), or None."""
        try:
            pixels, ids = item["pixel_values"], item["input_ids"]
        except (KeyError, TypeError):
            return f"not a prepared tinyllava input: {type(item).__name__}"
        n_images = 0 if pixels is None else len(pixels)
        n_tokens = sum(1 for token in ids if token == self._preparer.image_token_id)
        per_image = self._preparer.n_image_tokens
        if n_tokens != n_images * per_image:
            return f"prepared input has {n_tokens} image tokens for {n_images} image(s) of {per_image} tokens"
        return None

    def _generate_group(
        self, requests: Sequence[Request], prepared: Sequence[Mapping[str, Any]], temperature: float
    ) -> list[Response]:
        start = time.perf_counter()
        device, dtype = self.model.device, self.model.dtype
        input_ids, attention_mask = left_pad([p["input_ids"] for p in prepared], self.pad_id)
        pixels = [p["pixel_values"] for p in prepared if p["pixel_values"] is not None]
        max_new = max(r.generation.max_new_tokens for r in requests)
        extra: dict[str, Any] = {"do_sample": False}
        if temperature > 0:
            torch.manual_seed(self.seed)
            extra = {"do_sample": True, "temperature": temperature}
        if pixels:  # an explicit pixel_values=None breaks Llava's generate
            extra["pixel_values"] = torch.from_numpy(np.concatenate(pixels)).to(device, dtype)
        with torch.inference_mode():
            output = self.model.generate(
                input_ids=input_ids.to(device),
                attention_mask=attention_mask.to(device),
                max_new_tokens=max_new,
                num_beams=1,
                use_cache=True,
                eos_token_id=self.stop_ids,
                pad_token_id=self.pad_id,
                **extra,
            )
        new_tokens = output[:, input_ids.shape[1] :].tolist()
        seconds = (time.perf_counter() - start) / len(requests)
        return [
            self._response(request, item["input_ids"], tokens, seconds)
            for request, item, tokens in zip(requests, prepared, new_tokens)
        ]

    def _response(self, request: Request, prompt_ids: Sequence[int], tokens: Sequence[int], seconds: float) -> Response:
        kept = trim_new_tokens(tokens, request.generation.max_new_tokens, self.stop_ids)
        text = self.tokenizer.decode(kept, skip_special_tokens=True)
        text = cut_at_stops(text, (self.settings.template.stop, *request.generation.stop)).strip()
        return Response(text=text, prompt_tokens=len(prompt_ids), output_tokens=len(kept), seconds=seconds)

    def close(self) -> None:
        self.model = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
