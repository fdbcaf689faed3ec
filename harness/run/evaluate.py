"""``harness run``: load tasks and data, build the model, answer every request, score, record.

Each task's results are written (results.json, samples log, store entry) as soon as it finishes.
"""

from __future__ import annotations

import random
import secrets
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from rich.console import Console

from harness.adapter import ModelAdapter
from harness.console import plain, print_banner, print_run_summary
from harness.data.check import data_fingerprint, require_data, resolve_data_root
from harness.data.demo import DEMO_MODEL_SPEC, ensure_demo_root, is_demo_root
from harness.errors import ScoringFailed, UsageError
from harness.judging.cache import JudgeCache
from harness.judging.setup import JudgeOptions, OpenAIJudge, build_judge, require_judges, usage_since
from harness.protocol import Protocol, load_protocol
from harness.registry import get_adapter_class, get_tasks, parse_model_args, parse_model_spec
from harness.results.outcome import scoring_failure
from harness.results.recorder import RunRecorder, new_result, protocol_info
from harness.results.schema import DataInfo, RunResult, RunSpec, sample_records
from harness.run.distributed import Distributed, RankFailed, Topology
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
    shard: tuple[int, int] | None = None  # (I, N): answer every N-th batch from I; a partial run for `merge`
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


def load_samples(tasks: list[Task], root: Path, limit: int | None, protocol: Protocol) -> dict[str, list[Sample]]:
    """Each task's samples as a run evaluates them (``run`` and ``merge``): selected by the protocol, then
    the ``--limit`` subset."""
    samples: dict[str, list[Sample]] = {}
    for task in tasks:
        loaded = task.select(task.load(root), protocol.settings_for(task))
        samples[task.name] = task.subset(loaded, limit) if limit is not None else loaded
    return samples


def _no_judge_note(task: Task) -> str:
    return (f"not scored (--no-judge): score the samples log later with `harness score {task.name} --answers "
            f"<run dir>/samples/{task.name}.jsonl --judge openai:{task.default_judge or 'MODEL'}`")  # fmt: skip


def unscored(task: Task, samples: list[Sample], responses: dict[str, Response], why: str) -> TaskResult:
    """Answers kept, no metrics (a judged task run with ``--no-judge``, a ``--shard`` of a run)."""
    return TaskResult(
        task=task.name,
        version=task.version,
        metrics={},
        headline=list(task.headline),
        n_samples=len(samples),
        n_errors=sum(1 for s in samples if (r := responses.get(s.id)) is not None and r.error is not None),
        n_missing=sum(1 for s in samples if s.id not in responses),
        notes=[why],
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


def run(options: RunOptions, console: Console | None = None, dist: Distributed | None = None) -> RunResult:
    """One run, in this process, or across the processes a launcher started when ``dist`` says so (the CLI
    passes ``Distributed.from_env()``; rank 0 records the run). Library callers such as the training callback
    on rank 0 get a single-process run."""
    dist = dist or Distributed(Topology())
    try:
        if options.shard is not None and dist.world_size > 1:
            raise UsageError("--shard is for runs without a launcher; under torchrun the ranks share the work")
        return _run(options, console, dist)
    except BaseException as exc:
        if not isinstance(exc, RankFailed):
            dist.fail(f"{type(exc).__name__}: {exc}")
        raise
    finally:
        dist.close()


def _data_root(options: RunOptions, tasks: list[Task], dist: Distributed) -> Path:
    """The data root: the flag, $HARNESS_DATA_ROOT, else the demo root (written by rank 0 alone)."""
    root = resolve_data_root(options.data_root) if dist.is_main else None
    if dist.is_main and root is None:
        root = ensure_demo_root(tasks)
    shared = Path(dist.broadcast(str(root) if root is not None else None))
    if not shared.exists() and options.data_root is None:  # another machine without the shared folder
        shared = ensure_demo_root(tasks)
    return shared


def _run(options: RunOptions, console: Console | None, dist: Distributed) -> RunResult:
    console = console or Console(stderr=True, quiet=not dist.is_main)
    job = dist.broadcast(secrets.token_hex(8))  # names the shared batch counters of this job
    tasks = get_tasks(options.tasks)
    protocol = load_protocol(options.protocol)
    adapter_name, target = parse_model_spec(options.model)
    adapter_cls = get_adapter_class(adapter_name)
    model_args = parse_model_args(options.model_args)
    unsupported = [t.name for t in tasks if not protocol.supports(t)]
    if unsupported:
        raise UsageError(f"protocol '{protocol.name}' has no settings for task(s) {', '.join(unsupported)}")
    require_judges(tasks, options.judge, options.no_judge)

    root = _data_root(options, tasks, dist)
    demo_data = is_demo_root(root)
    require_data(tasks, root, "run")
    samples = load_samples(tasks, root, options.limit, protocol)

    results_root = Path(options.output_dir)
    use_judge = options.use_cache and options.judge.spec and dist.is_main
    judge_cache = JudgeCache(results_root / CACHE_FILE) if use_judge else None
    judge = build_judge(options.judge, judge_cache) if dist.is_main else None
    try:
        _seed_everything(options.seed)
        device = dist.device(options.device)
        adapter: ModelAdapter = adapter_cls.from_spec(target, model_args, device, options.seed)
    except BaseException:
        _close_judge(judge, judge_cache)
        raise
    info = adapter.info
    print_banner(console, info, root, demo_data, protocol)
    if dist.world_size > 1:
        console.print(f"ranks    {dist.world_size} processes (rank 0 records the run)")
    if judge is not None:
        demo_label = "[bold yellow]DEMO JUDGE[/] " if judge.is_demo else ""
        console.print(f"judge    {demo_label}{plain(judge.name)} at {plain(judge.client.base_url)}")

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
        world_size=dist.world_size,
        shard=f"{options.shard[0]}/{options.shard[1]}" if options.shard else None,
        argv=options.argv,
    )
    result = new_result(spec, info, DataInfo(root=str(root), is_demo=demo_data), protocol_info(protocol))
    recorder = RunRecorder(results_root, options.store, result) if dist.is_main else None
    if recorder is not None:  # rows left `running` by killed runs of this host
        for stale, status in recorder.store.interrupt_dead_runs():
            console.print(f"store    run {stale.id} marked {status}: {stale.reason}", markup=False, soft_wrap=True)

    def save(status: str | None = None, error: str | None = None) -> None:
        if recorder is None:
            return
        if judge is not None:
            result.judge = judge.info(options.judge.runs)
        if status is None:
            recorder.save()
        else:
            recorder.finish(status, error)

    save()
    failures: list[str] = []  # tasks left without their headline number
    runner = Runner(
        adapter, cache, options.batch_size, options.num_workers, console, options.show_progress, dist, options.shard
    )
    runner.job = job
    try:
        with _Interrupt():
            for task in tasks:
                task_start = time.perf_counter()
                settings = protocol.settings_for(task)
                task_samples = samples[task.name]
                requests: list[Request] = [task.build_request(s, settings) for s in task_samples]
                answers, timing = runner.answer(task.name, requests)
                if recorder is None:
                    continue
                by_id = {s.id: r for s, r in zip(task_samples, answers) if r is not None}
                if options.shard is not None:
                    task_samples = [s for s in task_samples if s.id in by_id]
                    scored = unscored(task, task_samples, by_id, f"partial run (shard {spec.shard}): merge all "
                                      "shards with `harness merge RUN_DIR ...` to score")  # fmt: skip
                    result.data.fingerprints[task.name] = data_fingerprint(task, root)
                    recorder.add_task(
                        scored, task_samples, by_id, {s.id: q for s, q in zip(samples[task.name], requests)},
                        protocol_settings=settings, data_fingerprint=result.data.fingerprints[task.name],
                        timing=timing,
                    )
                    save()
                    continue
                judge_before = judge.usage() if judge is not None else None
                scored = score_task(task, task_samples, by_id, options.judge.settings(settings), judge, root,
                                    recorder.path)  # fmt: skip
                timing.seconds = time.perf_counter() - task_start
                result.data.fingerprints[task.name] = data_fingerprint(task, root)
                judge_usage = usage_since(judge, judge_before)
                recorder.add_task(
                    scored, task_samples, by_id, {s.id: q for s, q in zip(task_samples, requests)},
                    protocol_settings=options.judge.settings(settings),
                    data_fingerprint=result.data.fingerprints[task.name], timing=timing, judge_usage=judge_usage,
                )
                answered = sum(1 for r in by_id.values() if r.error is None)
                if not (task.judged and judge is None) and (why := scoring_failure(scored, judge_usage, answered)):
                    failures.append(why)
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
    if recorder is not None:
        save("failed" if failures else "partial" if options.shard is not None else "complete", "; ".join(failures))
        recorder.close()
        print_run_summary(console, result, recorder.path)
    if failures:
        raise ScoringFailed("; ".join(failures))
    return result


def score_task(
    task: Task,
    samples: list[Sample],
    by_id: dict[str, Response],
    settings: dict,
    judge: OpenAIJudge | None,
    root: Path,
    run_dir: Path,
) -> TaskResult:
    """Score one task's answers as a run does (``run`` and ``merge``): the judge where needed, the bootstrap
    intervals, and the test-server submission file where the task has one."""
    if task.judged and judge is None:
        scored = unscored(task, samples, by_id, _no_judge_note(task))
    else:
        scored = task.score(samples, by_id, settings, judge=judge)
        add_intervals(task, scored, sample_records(task.name, samples, scored, by_id))
    if task.export_filename:
        written = task.export(samples, by_id, root, run_dir / task.export_filename)
        scored.notes.append(f"submission file for the test server: {written}")
    return scored


def _close_judge(judge: OpenAIJudge | None, cache: JudgeCache | None) -> None:
    if judge is not None:
        judge.close()
    if cache is not None:
        cache.close()
