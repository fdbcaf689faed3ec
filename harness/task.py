"""The task plugin contract: dataset + request builder + scorer (+ demo data writer)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from operator import methodcaller
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from harness.errors import HarnessError, UsageError
from harness.judging.contract import Judge
from harness.protocol import DEFAULT_PROTOCOL, load_protocol
from harness.types import DataFile, GenerationSettings, Request, Response, Sample, TaskResult

if TYPE_CHECKING:
    from harness.stats.bootstrap import Estimands

Settings = Mapping[str, Any]  # one task's settings under a protocol (its [tasks.NAME] table)
_QUESTION_ID = methodcaller("get", "question_id")  # an answers line's question_id (None when absent)


def strip_reasoning(text: str, tag_pairs: Sequence[Sequence[str]]) -> str:
    """The answer without its reasoning blocks (the protocol's ``reasoning_tags``), as lmms-eval's command line
    cleans every answer before scoring: each ``start ... end`` block is cut out (case-sensitive); where an
    ``end`` tag is left with no ``start`` (a prompt that opened the block), only the text after the last
    ``end`` is kept; an unclosed ``start`` stays. Surrounding whitespace is stripped in any case."""
    for start, end in tag_pairs:
        while (i := text.find(start)) != -1 and (j := text.find(end, i)) != -1:
            text = text[:i] + text[j + len(end) :]
        if end in text and start not in text:
            text = text.rsplit(end, 1)[-1]
    return text.strip()


class Task(ABC):
    """A benchmark. Subclasses set the class attributes and implement the abstract methods.

    ``version`` is bumped, with a line in ``changelog``, whenever prompts, parsing or scoring change (a task
    that sets only ``changelog`` gets its last key as ``version``).
    A protocol picks the prompt builder and the scorer by name (its ``prompt`` and ``scorer`` settings)
    among ``prompts`` and ``scorers``; ``build_request`` and ``score`` dispatch on them.
    """

    name: ClassVar[str]
    version: ClassVar[str]
    description: ClassVar[str] = ""
    judged: ClassVar[bool] = False  # True: scoring needs a judge (the run refuses to start without one)
    default_judge: ClassVar[str | None] = None  # the judge model of the papers' numbers, e.g. "gpt-4-0613"
    headline: ClassVar[tuple[str, ...]] = ()
    changelog: ClassVar[dict[str, str]] = {}
    # Prompt builders by name (a protocol's ``prompt``): method names; each method takes (sample, settings)
    # and returns the user turn, ``<image>`` marks included.
    prompts: ClassVar[dict[str, str]] = {}
    # Scorers by name (a protocol's ``scorer``): method names; each method takes (samples, responses,
    # settings, judge) and returns the TaskResult.
    scorers: ClassVar[dict[str, str]] = {}
    # Optional fallback for third-party tasks that no protocol file names: settings by protocol name, used
    # where a protocol has no [tasks.NAME] table (``Protocol.settings_for`` / ``supports``). The shipped
    # tasks keep theirs in the protocol files and leave this empty.
    default_settings: ClassVar[dict[str, dict[str, Any]]] = {}
    # The ``metadata`` / ``detail`` keys of a samples-log record that ``statistics`` reads (baseline files keep them).
    record_fields: ClassVar[dict[str, tuple[str, ...]]] = {}
    # What ``--limit`` counts: samples, or whole subset groups (MMBench: questions with all their passes).
    limit_counts: ClassVar[Literal["samples", "groups"]] = "samples"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """``version`` defaults to the last ``changelog`` entry (and must have one when both are given); a
        ``prompts`` / ``scorers`` entry that names no method fails when the plugin is imported."""
        super().__init_subclass__(**kwargs)
        if "version" not in cls.__dict__ and "changelog" in cls.__dict__ and cls.changelog:
            cls.version = list(cls.changelog)[-1]
        if cls.changelog and getattr(cls, "version", None) not in cls.changelog:
            raise TypeError(f"{cls.__name__}: version {getattr(cls, 'version', None)!r} has no changelog line")
        for kind, table in (("prompt builder", cls.prompts), ("scorer", cls.scorers)):
            for name, method in table.items():
                if not callable(getattr(cls, method, None)):
                    raise TypeError(f"{cls.__name__}: {kind} '{name}' names no method '{method}'")

    @abstractmethod
    def data_files(self) -> list[DataFile]:
        """Every file this task reads under the data root."""

    @abstractmethod
    def load(self, data_root: Path) -> list[Sample]:
        """Read the official files into samples, in the official file order. Never opens images."""

    def load_for_scoring(self, data_root: Path) -> list[Sample]:
        """Samples from the ``needed_for="score"`` files alone (``harness score`` without run-only files such
        as LLaVA's question files), with the ids, targets and scored metadata ``load`` gives. Default:
        ``load`` (tasks whose scorer reads every file but the images)."""
        return self.load(data_root)

    def build_request(self, sample: Sample, settings: Mapping[str, Any]) -> Request:
        """The request for one sample: the text of the prompt builder ``settings["prompt"]`` names, with
        the protocol's generation settings. ``settings`` is the protocol's task table (see ``resolve``)."""
        chosen = self.resolve(settings)
        prompt = self.named("prompt", self.prompts, chosen)(sample, chosen)
        return Request(
            task=self.name, sample_id=sample.id, prompt=prompt, images=sample.images, generation=self.generation(chosen)
        )

    def score(
        self,
        samples: Sequence[Sample],
        responses: Mapping[str, Response],
        settings: Mapping[str, Any] | None = None,
        judge: Judge | None = None,
    ) -> TaskResult:
        """Score exactly as the scorer ``settings["scorer"]`` names does (the official tool for ``llava15``).

        Pure apart from the judge: samples and responses in, result out. ``responses`` maps sample id
        to response; a sample with no entry is missing. ``settings`` is the protocol's task table (None:
        the llava15 protocol's); ``judge`` is given only when the user configured one.
        """
        chosen = self.resolve(settings)
        tags = chosen.get("reasoning_tags")
        if tags:
            responses = {sid: replace(r, text=strip_reasoning(r.text, tags)) for sid, r in responses.items()}
        return self.named("scorer", self.scorers, chosen)(samples, responses, chosen, judge)

    def resolve(self, settings: Mapping[str, Any] | None) -> dict[str, Any]:
        """``settings`` over the llava15 protocol's settings for this task: a key left out takes llava15's
        value, and None means llava15's settings (read from the shipped file)."""
        return {**load_protocol(DEFAULT_PROTOCOL).settings_for(self), **(settings or {})}

    def named(self, key: str, table: Mapping[str, str], settings: Mapping[str, Any]) -> Callable[..., Any]:
        """The method the setting ``key`` names in ``table``; UsageError naming the task, key and choices."""
        value = settings.get(key)
        if not isinstance(value, str) or value not in table:
            choices = ", ".join(table) or "none defined"
            raise UsageError(f"task {self.name}: protocol setting {key}={value!r} is not one of: {choices}")
        return getattr(self, table[value])

    def setting(self, settings: Mapping[str, Any], key: str) -> Any:
        """A setting a prompt builder or scorer needs; UsageError naming the task and the key when absent."""
        if key not in settings:
            raise UsageError(f"task {self.name}: the protocol gives no '{key}' setting")
        return settings[key]

    def generation(self, settings: Mapping[str, Any]) -> GenerationSettings:
        """``max_new_tokens`` (required), ``temperature`` (default 0: greedy) and ``stop`` (default none)."""
        return GenerationSettings(
            max_new_tokens=int(self.setting(settings, "max_new_tokens")),
            temperature=float(settings.get("temperature", 0.0)),
            stop=tuple(str(s) for s in settings.get("stop", ())),
        )

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

        The default matches ``answer_id(question_id)`` to the sample id; a later line wins, as the official
        converters' dicts do (see :meth:`answer_lines`).
        """
        lines = list(records)
        return {sid: str(lines[i].get("text", "")) for sid, i in self.answer_lines(samples, lines).items()}

    def answer_lines(self, samples: Sequence[Sample], lines: Sequence[dict[str, Any]]) -> dict[str, int]:
        """The default join as sample id -> index of the line that answers it (a later line wins; the id keeps
        the place of its first line). Used by ``harness score`` when ``match_answers`` is not overridden."""
        return self.answer_positions(samples, list(map(_QUESTION_ID, lines)))

    def answer_positions(self, samples: Sequence[Sample], question_ids: Sequence[Any]) -> dict[str, int]:
        """:meth:`answer_lines` on the lines' ``question_id`` values alone (None where a line has none)."""
        ids = {s.id for s in samples}
        answer_id = str if type(self).answer_id is Task.answer_id else self.answer_id
        # dict(zip(...)) keeps each id's last index at its first place, as a loop would, in C (214k lines on VQAv2)
        out = dict(zip(map(answer_id, question_ids), range(len(question_ids))))
        for unknown in out.keys() - ids:
            del out[unknown]
        return out

    def answer_id(self, question_id: Any) -> str | None:
        """The sample id an answers line's ``question_id`` names (default: the id as text)."""
        return str(question_id)

    def score_path(
        self, path: Path, data_root: Path | None, settings: Settings | None = None, judge: Judge | None = None
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
