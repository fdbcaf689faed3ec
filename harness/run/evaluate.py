"""``harness run``: load tasks and data, build the model, answer every request, score, record.

Each task's results are written (results.json, samples log, store entry) as soon as it finishes.
"""

from __future__ import annotations

import random
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from rich.console import Console

from harness.adapter import ModelAdapter
from harness.console import print_banner, print_run_summary
from harness.data.check import data_fingerprint, require_data, resolve_data_root
from harness.data.demo import DEMO_MODEL_SPEC, ensure_demo_root, is_demo_root
from harness.judging.cache import JudgeCache
from harness.judging.setup import JudgeOptions, OpenAIJudge, build_judge, require_judges, usage_since
from harness.protocol import Protocol, load_protocol
from harness.registry import get_adapter_class, get_tasks, parse_model_args, parse_model_spec
from harness.results.recorder import RunRecorder, new_result, protocol_info
from harness.results.schema import DataInfo, RunResult, RunSpec, sample_records
from harness.run.response_cache import CACHE_FILE, ResponseCache
from harness.run.runner import Runner
from harness.stats.intervals import add_intervals
from harness.task import Task
from harness.types import Request, Response, Sample, TaskResult

__all__ = ["CACHE_FILE", "RunOptions", "run"]


@dataclass
class RunOptions:
    tasks: str
    model: str = DEMO_MODEL_SPEC
    model_args: str | None = None
    batch_size: int = 16
    limit: int | None = None
    data_root: str | None = None
    output_dir: str = "results"
    protocol: str = "llava15"
    device: str | None = None
    seed: int = 0
    num_workers: int = 0
    store: str | None = None
    use_cache: bool = True
    show_progress: bool = True
    judge: JudgeOptions = field(default_factory=JudgeOptions)
    no_judge: bool = False  # judged tasks: generate and keep the answers, score later with `harness score`
    argv: list[str] = field(default_factory=list)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:
        pass
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)


def _load_samples(tasks: list[Task], root: Path, limit: int | None, protocol: Protocol) -> dict[str, list[Sample]]:
    samples: dict[str, list[Sample]] = {}
    for task in tasks:
        loaded = task.select(task.load(root), protocol.settings_for(task))
        samples[task.name] = task.subset(loaded, limit) if limit is not None else loaded
    return samples


def unscored(task: Task, samples: list[Sample], responses: dict[str, Response]) -> TaskResult:
    """The result of a judged task run with ``--no-judge``: answers kept, no metrics."""
    return TaskResult(
        task=task.name,
        version=task.version,
        metrics={},
        headline=list(task.headline),
        n_samples=len(samples),
        n_errors=sum(1 for s in samples if (r := responses.get(s.id)) is not None and r.error is not None),
        n_missing=sum(1 for s in samples if s.id not in responses),
        notes=[
            f"not scored (--no-judge): score the samples log later with `harness score {task.name} --answers "
            f"<run dir>/samples/{task.name}.jsonl --judge openai:{task.default_judge or 'MODEL'}`"
        ],
    )


class _Interrupt:
    """Turns SIGTERM into KeyboardInterrupt so an interrupted run is marked as such."""

    def __enter__(self) -> _Interrupt:
        self._old = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    def __exit__(self, *exc: object) -> None:
        signal.signal(signal.SIGTERM, self._old)


def run(options: RunOptions, console: Console | None = None) -> RunResult:
    console = console or Console(stderr=True)
    tasks = get_tasks(options.tasks)
    protocol = load_protocol(options.protocol)
    adapter_name, target = parse_model_spec(options.model)
    adapter_cls = get_adapter_class(adapter_name)
    model_args = parse_model_args(options.model_args)
    unsupported = [t.name for t in tasks if not protocol.supports(t)]
    if unsupported:
        from harness.errors import UsageError

        raise UsageError(f"protocol '{protocol.name}' has no settings for task(s) {', '.join(unsupported)}")
    require_judges(tasks, options.judge, options.no_judge)

    root = resolve_data_root(options.data_root)
    if root is None:
        root = ensure_demo_root(tasks)
    demo_data = is_demo_root(root)
    require_data(tasks, root, "run")
    samples = _load_samples(tasks, root, options.limit, protocol)

    results_root = Path(options.output_dir)
    judge_cache = JudgeCache(results_root / CACHE_FILE) if options.use_cache and options.judge.spec else None
    judge = build_judge(options.judge, judge_cache)
    try:
        _seed_everything(options.seed)
        adapter: ModelAdapter = adapter_cls.from_spec(target, model_args, options.device, options.seed)
    except BaseException:
        _close_judge(judge, judge_cache)
        raise
    info = adapter.info
    print_banner(console, info, root, demo_data, protocol)
    if judge is not None:
        demo_label = "[bold yellow]DEMO JUDGE[/] " if judge.is_demo else ""
        console.print(f"judge    {demo_label}{judge.name} at {judge.client.base_url}")

    cache = ResponseCache(results_root / CACHE_FILE) if options.use_cache else None
    spec = RunSpec(
        command="run",
        tasks=[t.name for t in tasks],
        model=options.model,
        model_args=model_args,
        batch_size=options.batch_size,
        limit=options.limit,
        data_root=str(root),
        output_dir=str(results_root.resolve()),
        protocol=protocol.name,
        device=info.device,
        seed=options.seed,
        num_workers=options.num_workers,
        no_judge=options.no_judge,
        argv=options.argv,
    )
    recorder = RunRecorder(
        results_root, options.store, new_result(spec, info, DataInfo(root=str(root), is_demo=demo_data),
                                                protocol_info(protocol))
    )
    result = recorder.result

    def save(status: str | None = None, error: str | None = None) -> None:
        if judge is not None:
            result.judge = judge.info(options.judge.runs)
        if status is None:
            recorder.save()
        else:
            recorder.finish(status, error)

    save()
    runner = Runner(adapter, cache, options.batch_size, options.num_workers, console, options.show_progress)
    try:
        with _Interrupt():
            for task in tasks:
                task_start = time.perf_counter()
                settings = protocol.settings_for(task)
                task_samples = samples[task.name]
                requests: list[Request] = [task.build_request(s, settings) for s in task_samples]
                responses, timing = runner.answer(task.name, requests)
                by_id = {s.id: r for s, r in zip(task_samples, responses)}
                settings = options.judge.settings(settings)
                judge_before = judge.usage() if judge is not None else None
                if task.judged and judge is None:
                    scored = unscored(task, task_samples, by_id)
                else:
                    scored = task.score(task_samples, by_id, settings, judge=judge)
                    add_intervals(task, scored, sample_records(task.name, task_samples, scored, by_id))
                if task.export_filename:
                    written = task.export(task_samples, by_id, root, recorder.path / task.export_filename)
                    scored.notes.append(f"submission file for the test server: {written}")
                timing.seconds = time.perf_counter() - task_start
                result.data.fingerprints[task.name] = data_fingerprint(task, root)
                recorder.add_task(
                    scored, task_samples, by_id, {s.id: q for s, q in zip(task_samples, requests)},
                    protocol_settings=settings, data_fingerprint=result.data.fingerprints[task.name], timing=timing,
                    judge_usage=usage_since(judge, judge_before),
                )
                save()
    except KeyboardInterrupt:
        save("interrupted")
        raise
    except BaseException as exc:
        save("failed", f"{type(exc).__name__}: {exc}")
        raise
    finally:
        adapter.close()
        if cache:
            cache.close()
        _close_judge(judge, judge_cache)
    save("complete")
    recorder.close()
    print_run_summary(console, result, recorder.path)
    return result


def _close_judge(judge: OpenAIJudge | None, cache: JudgeCache | None) -> None:
    if judge is not None:
        judge.close()
    if cache is not None:
        cache.close()
