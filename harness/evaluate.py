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
from harness.cache import ResponseCache
from harness.console import print_banner, print_run_summary
from harness.datacheck import data_fingerprint, require_data, resolve_data_root
from harness.demo import DEMO_MODEL_SPEC, ensure_demo_root, is_demo_root
from harness.protocol import Protocol, load_protocol
from harness.provenance import environment, git_info
from harness.registry import get_adapter_class, get_tasks, parse_model_args, parse_model_spec
from harness.results import DataInfo, ProtocolInfo, RunDirectory, RunResult, RunSpec, new_run_id, task_record, utc_now
from harness.runner import Runner
from harness.store import ResultsStore, default_store_url
from harness.task import Task
from harness.types import Request, Sample

CACHE_FILE = "cache.sqlite"


@dataclass
class RunOptions:
    tasks: str
    model: str = DEMO_MODEL_SPEC
    model_args: str | None = None
    batch_size: int = 8
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

    root = resolve_data_root(options.data_root)
    if root is None:
        root = ensure_demo_root(tasks)
    demo_data = is_demo_root(root)
    require_data(tasks, root, "run")
    samples = _load_samples(tasks, root, options.limit, protocol)

    _seed_everything(options.seed)
    adapter: ModelAdapter = adapter_cls.from_spec(target, model_args, options.device, options.seed)
    info = adapter.info
    print_banner(console, info, root, demo_data, protocol)

    results_root = Path(options.output_dir)
    run_id = new_run_id(info.name)
    run_dir = RunDirectory(results_root, run_id)
    store = ResultsStore(options.store or default_store_url(results_root))
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
        argv=options.argv,
    )
    result = RunResult(
        run_id=run_id,
        created=utc_now(),
        spec=spec,
        protocol=ProtocolInfo(name=protocol.name, version=protocol.version, description=protocol.description),
        model=info,
        data=DataInfo(root=str(root), is_demo=demo_data),
        git=git_info(),
        environment=environment(),
    )

    def save() -> None:
        run_dir.write_results(result)
        store.record(result, run_dir.path)

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
                scored = task.score(task_samples, by_id, settings)
                if task.export_filename:
                    written = task.export(task_samples, by_id, root, run_dir.path / task.export_filename)
                    scored.notes.append(f"submission file for the test server: {written}")
                rel = run_dir.write_samples(
                    task.name, task_samples, scored, by_id, {s.id: q for s, q in zip(task_samples, requests)}
                )
                timing.seconds = time.perf_counter() - task_start
                result.data.fingerprints[task.name] = data_fingerprint(task, root)
                result.tasks[task.name] = task_record(
                    scored, rel, protocol_settings=settings, data_fingerprint=result.data.fingerprints[task.name],
                    timing=timing,
                )
                save()
    except KeyboardInterrupt:
        result.status = "interrupted"
        result.finished = utc_now()
        save()
        raise
    except BaseException as exc:
        result.status = "failed"
        result.errors.append(f"{type(exc).__name__}: {exc}")
        result.finished = utc_now()
        save()
        raise
    finally:
        adapter.close()
        if cache:
            cache.close()
    result.status = "complete"
    result.finished = utc_now()
    save()
    store.close()
    print_run_summary(console, result, run_dir.path)
    return result
