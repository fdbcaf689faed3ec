"""Our model adapters as an lmms-eval model: ``--model tinyllava_harness --model_args model=ADAPTER:TARGET``.

Importable only where lmms-eval is installed. lmms-eval 0.7 finds it through the ``lmms_eval.models``
entry-point group (``manifest`` below, declared in pyproject.toml), which its model registry reads at
start-up; no lmms-eval file is edited. Other ``--model_args`` keys (e.g. ``conv=phi,dtype=float32``)
go to the adapter as its ``--model-args``; ``num_workers`` and ``seed`` are the plugin's own.
"""

from __future__ import annotations

from typing import Any

from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms
from lmms_eval.api.registry import register_model
from lmms_eval.models.registry_v2 import ModelManifest
from loguru import logger

from harness.registry import get_adapter_class, parse_model_spec
from harness.run.runner import Runner
from harness.types import Request
from model_adapters.lmms_eval_requests import build_request, flatten_visuals

MODEL_NAME = "tinyllava_harness"
CLASS_PATH = "model_adapters.lmms_eval_plugin.HarnessModel"
DEFAULT_BATCH_SIZE = 8


def parse_batch_size(value: int | str) -> int:
    """lmms-eval's ``--batch_size``: a number, or "auto"/"auto:N" (our default of 8, or N)."""
    text = str(value)
    if text.startswith("auto"):
        _, _, limit = text.partition(":")
        return int(limit) if limit.isdigit() else DEFAULT_BATCH_SIZE
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{MODEL_NAME}: --batch_size {value} is not a positive number or auto")
    return int(text)


def manifest() -> ModelManifest:
    """The entry-point payload: lmms-eval imports the class lazily, when the model is asked for."""
    return ModelManifest(model_id=MODEL_NAME, simple_class_path=CLASS_PATH)


@register_model(MODEL_NAME)
class HarnessModel(lmms):
    """generate_until through one of our adapters, batched by our runner (length-sorted, left-padded)."""

    is_simple = True

    def __init__(
        self,
        model: str = "",
        batch_size: int | str = 8,
        device: str | None = None,
        max_batch_size: int | None = None,
        num_workers: int = 0,
        seed: int = 0,
        **adapter_args: Any,
    ) -> None:
        super().__init__()
        if not model:
            raise ValueError(f"{MODEL_NAME}: --model_args needs model=ADAPTER:TARGET (e.g. model=tinyllava:/ckpt)")
        name, target = parse_model_spec(model)
        args = {key: str(value) for key, value in adapter_args.items()}
        torch_device = None if device in (None, "", "auto") else str(device)
        self.adapter = get_adapter_class(name).from_spec(target, args, torch_device, int(seed))
        self.batch_size_per_gpu = parse_batch_size(batch_size)
        self.runner = Runner(self.adapter, None, self.batch_size_per_gpu, int(num_workers), show_progress=False)
        info = self.adapter.info
        logger.info(f"{MODEL_NAME}: {info.spec} on {info.device}, batch size {self.batch_size_per_gpu}")

    @property
    def batch_size(self) -> int:
        return self.batch_size_per_gpu

    def _request(self, instance: Instance) -> Request:
        context, gen_kwargs, doc_to_visual, doc_id, task, split = instance.args
        visuals = flatten_visuals(doc_to_visual(self.task_dict[task][split][doc_id]) if doc_to_visual else None)
        return build_request(task, doc_id, context, dict(gen_kwargs or {}), visuals)

    def generate_until(self, requests: list[Instance]) -> list[str]:
        """One answer per instance, in order; a failed sample answers "" (lmms-eval's convention)."""
        built = [self._request(instance) for instance in requests]
        responses, timing = self.runner.answer("lmms-eval", built)
        texts = []
        for request, response in zip(built, responses):
            if response.error:
                logger.error(f"{MODEL_NAME}: {request.task} doc {request.sample_id}: {response.error}")
            texts.append(response.text if not response.error else "")
        logger.info(f"{MODEL_NAME}: {timing.n_generated} generated in {timing.generate_seconds:.2f}s")
        return texts

    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        raise NotImplementedError(f"{MODEL_NAME} answers generate_until tasks only")

    def generate_until_multi_round(self, requests: list[Instance]) -> list[str]:
        raise NotImplementedError(f"{MODEL_NAME} answers single-round generate_until tasks only")
