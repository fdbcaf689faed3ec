"""The task plugin contract: dataset + request builder + scorer (+ demo data writer)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from harness.errors import HarnessError
from harness.judging.contract import Judge
from harness.types import DataFile, Request, Response, Sample, TaskResult

if TYPE_CHECKING:
    from harness.stats.bootstrap import Estimands


class Task(ABC):
    """A benchmark. Subclasses set the class attributes and implement the abstract methods.

    ``version`` is bumped, with a line in ``changelog``, whenever prompts, parsing or scoring change.
    """

    name: ClassVar[str]
    version: ClassVar[str]
    description: ClassVar[str] = ""
    judged: ClassVar[bool] = False  # True: scoring needs a judge (the run refuses to start without one)
    default_judge: ClassVar[str | None] = None  # the judge model of the papers' numbers, e.g. "gpt-4-0613"
    headline: ClassVar[tuple[str, ...]] = ()
    changelog: ClassVar[dict[str, str]] = {}
    # Per-protocol settings used when a protocol file has no section for this task.
    default_settings: ClassVar[dict[str, dict[str, Any]]] = {}
    # The ``metadata`` / ``detail`` keys of a samples-log record that ``statistics`` reads (baseline files keep them).
    record_fields: ClassVar[dict[str, tuple[str, ...]]] = {}
    # What ``--limit`` counts: samples, or whole subset groups (MMBench: questions with all their passes).
    limit_counts: ClassVar[Literal["samples", "groups"]] = "samples"

    @abstractmethod
    def data_files(self) -> list[DataFile]:
        """Every file this task reads under the data root."""

    @abstractmethod
    def load(self, data_root: Path) -> list[Sample]:
        """Read the official files into samples, in the official file order. Never opens images."""

    @abstractmethod
    def build_request(self, sample: Sample, settings: Mapping[str, Any]) -> Request:
        """The request for one sample under a protocol; ``settings`` is the protocol's task section."""

    @abstractmethod
    def score(
        self,
        samples: Sequence[Sample],
        responses: Mapping[str, Response],
        settings: Mapping[str, Any] | None = None,
        judge: Judge | None = None,
    ) -> TaskResult:
        """Score exactly as the protocol's scorer does (the official tool for ``llava15``).

        Pure apart from the judge: samples and responses in, result out. ``responses`` maps sample id
        to response; a sample with no entry is missing. ``settings`` is the protocol's task section
        (None: the official scorer); ``judge`` is given only when the user configured one.
        """

    def select(self, samples: list[Sample], settings: Mapping[str, Any]) -> list[Sample]:
        """The samples a protocol evaluates (all by default; e.g. lmms-eval's ScienceQA keeps image problems)."""
        return samples

    def subset(self, samples: list[Sample], limit: int) -> list[Sample]:
        """A fixed stratified subset of about ``limit`` samples (``--limit``): whole ``subset_group``s, each
        ``subset_stratum`` in proportion, the same ids whatever the order (``harness.stats.subsets``)."""
        from harness.stats.subsets import stratified_subset

        return stratified_subset(
            samples, limit, self.subset_stratum, self.subset_group, self.name, self.limit_counts == "groups"
        )

    def subset_stratum(self, sample: Sample) -> str:
        """The stratum a sample belongs to for ``--limit`` subsets (a category; "" for none)."""
        return ""

    def subset_group(self, sample: Sample) -> str:
        """Samples with the same key are kept or dropped together by ``--limit`` (default: each alone)."""
        return sample.id

    def statistics(self, records: Sequence[Mapping[str, Any]]) -> Estimands:
        """How the main metrics are recomputed from per-sample records (samples-log lines) when clusters are
        resampled: per-cluster column sums and a combine function per metric (``harness.stats.bootstrap``).

        The default describes none; the harness then treats a headline metric as a plain mean of per-sample
        scores where that reproduces its value.
        """
        from harness.stats.bootstrap import Estimands

        return Estimands()

    def match_answers(self, samples: Sequence[Sample], records: Iterable[dict[str, Any]]) -> dict[str, str]:
        """Join the lines of a LLaVA answers JSONL (question_id, text, prompt) to sample ids.

        The default matches ``question_id`` to the sample id; a later line wins, as the official
        converters' dicts do.
        """
        ids = {s.id for s in samples}
        out: dict[str, str] = {}
        for rec in records:
            qid = str(rec.get("question_id"))
            if qid in ids:
                out[qid] = str(rec.get("text", ""))
        return out

    def score_path(
        self,
        path: Path,
        data_root: Path | None,
        settings: Mapping[str, Any] | None = None,
        judge: Judge | None = None,
    ) -> TaskResult | None:
        """Score a task-specific answers format (for example MME's eval_tool folder, MM-Vet's results
        file). Return None when ``path`` is not such a format, so the generic readers are tried.
        """
        return None

    # File name a run writes with ``export`` (test-server submissions); None: the task exports nothing.
    export_filename: ClassVar[str | None] = None

    def export(
        self, samples: Sequence[Sample], responses: Mapping[str, Response], data_root: Path, output: Path
    ) -> Path:
        """Write the test-server submission file for these answers; returns the path written."""
        raise HarnessError(f"task {self.name} has no export format")

    # Hugging Face dataset repo holding a public parquet copy (``harness data prepare --source hf``).
    hf_dataset: ClassVar[str | None] = None

    def prepare(self, source: Path, root: Path) -> None:
        """Build this task's files under ``root`` (official layout) from a local snapshot of ``hf_dataset``."""
        raise HarnessError(f"task {self.name} cannot be prepared from a Hugging Face copy")

    def write_demo(self, root: Path, seed: int) -> None:
        """Write synthetic demo data for this task under ``root`` in the official layout."""
        raise HarnessError(f"task {self.name} has no demo data generator")
