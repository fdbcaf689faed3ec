"""The base class our task plugins share: LLaVA's and lmms-eval's prompt builders, scorer methods made from
the scorer modules' functions, and the package convention for building data (``<package>.prepare.prepare_root``)
and demo data (``<package>.demo.write_demo``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from importlib import import_module
from pathlib import Path
from typing import ClassVar

from harness.judging.contract import Judge
from harness.task import Settings, Task
from harness.types import Response, Sample, TaskResult
from tasks.common.requests import with_image
from tasks.common.scoring import Header

ScorerMethod = Callable[["LlavaTask", Sequence[Sample], Mapping[str, Response], Settings, Judge | None], TaskResult]


class LlavaTask(Task):
    """A task with the two usual prompt builders: ``llava`` (the question file's text) and ``lmms-eval``."""

    prompts: ClassVar[dict[str, str]] = {"llava": "llava_prompt", "lmms-eval": "lmms_eval_prompt"}

    @property
    def header(self) -> Header:
        """What every result names: the task, its version and its headline metrics."""
        return self.name, self.version, self.headline

    def llava_prompt(self, sample: Sample, settings: Settings) -> str:
        """LLaVA's request: ``<image>\\n`` + the text of the question file."""
        return with_image(sample.question)

    def lmms_eval_prompt(self, sample: Sample, settings: Settings) -> str:
        """lmms-eval's doc_to_text convention: ``<image>\\n`` + ``pre_prompt`` + the question + ``post_prompt``."""
        pre, post = self.setting(settings, "pre_prompt"), self.setting(settings, "post_prompt")
        return with_image(f"{pre}{self.lmms_eval_question(sample, settings)}{post}")

    def lmms_eval_question(self, sample: Sample, settings: Settings) -> str:
        """The question lmms-eval's prompt wraps: the official text (``raw_question``) where the task keeps
        one apart from LLaVA's, else the question text."""
        return str(sample.metadata.get("raw_question", sample.question))

    def prepare(self, source: Path, root: Path) -> None:
        """Build the files from a snapshot of ``hf_dataset`` with the package's ``prepare.prepare_root`` (a task
        that declares no such copy keeps the base class's refusal)."""
        if self.hf_dataset is None:
            return super().prepare(source, root)
        import_module(f"{self.__module__}.prepare").prepare_root(source, root)

    def write_demo(self, root: Path, seed: int) -> None:
        """Write demo data with the package's ``demo.write_demo`` (imported only when asked)."""
        import_module(f"{self.__module__}.demo").write_demo(root, seed)


def header_scorer(function: Callable[..., TaskResult], header_as_args: bool = False) -> ScorerMethod:
    """A scorer method (for ``Task.scorers``) calling a scorer module's ``function(samples, responses, header)``,
    or ``function(samples, responses, name, version, headline)`` with ``header_as_args``."""

    def method(
        task: LlavaTask,
        samples: Sequence[Sample],
        responses: Mapping[str, Response],
        settings: Settings,
        judge: Judge | None,
    ) -> TaskResult:
        if header_as_args:
            return function(samples, responses, *task.header)
        return function(samples, responses, task.header)

    method.__doc__ = function.__doc__
    return method
