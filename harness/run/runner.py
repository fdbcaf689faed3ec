"""Turns a task's requests into responses: cache lookup, length-sorted batches, DataLoader workers
for preprocessing, the adapter's batched generate, and a progress bar with samples/s.

Results do not depend on batch size or on what was cached: requests are answered independently
and put back in sample order.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from harness.adapter import ModelAdapter
from harness.results.schema import Timing
from harness.run.response_cache import ResponseCache
from harness.types import Request, Response


@dataclass
class _Prepared:
    """A request after CPU preparation: either the adapter's input or the error that stopped it."""

    index: int
    value: Any = None
    error: str | None = None


class _PreparedRequests:
    """Map-style dataset running the adapter's preparer; errors become data, not exceptions."""

    def __init__(self, requests: Sequence[Request], preparer: Callable[[Request], Any]) -> None:
        self.requests = requests
        self.preparer = preparer

    def __len__(self) -> int:
        return len(self.requests)

    def __getitem__(self, index: int) -> _Prepared:
        request = self.requests[index]
        try:
            return _Prepared(index, value=self.preparer(request))
        except Exception as exc:  # an unreadable image must not stop the run
            where = ", ".join(im.describe() for im in request.images)
            return _Prepared(index, error=f"{type(exc).__name__}: {exc} ({where})")


def _collate(items: list[_Prepared]) -> list[_Prepared]:
    return items


def default_num_workers() -> int:
    """Preprocessing workers: none on a machine of two cores or fewer (they would compete with the
    model for the CPU), else half the cores, at most 8."""
    cores = os.cpu_count() or 1
    return 0 if cores <= 2 else min(8, cores // 2)


def plan_batches(requests: Sequence[Request], batch_size: int, sort_key: Callable[[Request], int]) -> list[list[int]]:
    """Indices grouped into batches: same generation settings per batch, longest prompts first."""
    groups: dict[Any, list[int]] = {}
    for i, req in enumerate(requests):
        groups.setdefault((req.generation, req.system, req.raw), []).append(i)
    batches: list[list[int]] = []
    for indices in groups.values():
        ordered = sorted(indices, key=lambda i: (-sort_key(requests[i]), i))
        batches.extend(ordered[s : s + batch_size] for s in range(0, len(ordered), batch_size))
    return batches


class SampleRateColumn(ProgressColumn):
    """Generated samples per second in this run."""

    def render(self, task: Any) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:6.1f} samples/s" if speed else "   -- samples/s", style="cyan")


class Runner:
    def __init__(
        self,
        adapter: ModelAdapter,
        cache: ResponseCache | None,
        batch_size: int = 16,
        num_workers: int = 0,
        console: Console | None = None,
        show_progress: bool = True,
    ) -> None:
        self.adapter = adapter
        self.cache = cache
        self.batch_size = max(1, batch_size)
        self.num_workers = max(0, num_workers)
        self.console = console or Console(stderr=True)
        self.show_progress = show_progress

    def answer(self, label: str, requests: Sequence[Request]) -> tuple[list[Response], Timing]:
        """Responses in the order of ``requests``; identical requests are generated once."""
        start = time.perf_counter()
        fingerprint = self.adapter.fingerprint
        keys = [r.key() for r in requests]
        cached = self.cache.get_many(fingerprint, sorted(set(keys))) if self.cache else {}
        todo_keys: list[str] = []
        todo: list[Request] = []
        seen: set[str] = set(cached)
        for key, req in zip(keys, requests):
            if key not in seen:
                seen.add(key)
                todo_keys.append(key)
                todo.append(req)
        n_cached = len(requests) - len(todo)
        if n_cached:
            label = f"{label} ({n_cached} cached)"
        fresh = self._generate_all(label, todo, todo_keys, fingerprint)
        by_key = {**cached, **fresh}
        responses = [by_key[k] for k in keys]
        gen_seconds = time.perf_counter() - start
        timing = Timing(
            generate_seconds=gen_seconds,
            n_requests=len(requests),
            n_generated=len(todo),
            n_cached=n_cached,
            samples_per_second=(len(todo) / gen_seconds) if todo and gen_seconds > 0 else None,
            output_tokens=sum(r.output_tokens for r in fresh.values()),
        )
        return responses, timing

    def _generate_all(
        self,
        label: str,
        todo: list[Request],
        keys: list[str],
        fingerprint: str,
    ) -> dict[str, Response]:
        out: dict[str, Response] = {}
        if not todo:
            return out
        batches = plan_batches(todo, self.batch_size, self.adapter.sort_key)
        progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            SampleRateColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self.console,
            disable=not self.show_progress,
        )
        with progress:
            bar = progress.add_task(label, total=len(todo))
            for batch in self._prepared_batches(todo, batches):
                responses = self._generate_batch([todo[p.index] for p in batch], batch)
                pairs = [(keys[p.index], r) for p, r in zip(batch, responses)]
                out.update(pairs)
                if self.cache:
                    self.cache.put_many(fingerprint, pairs)
                progress.advance(bar, len(batch))
        return out

    def _prepared_batches(self, todo: list[Request], batches: list[list[int]]) -> Iterator[list[_Prepared]]:
        dataset = _PreparedRequests(todo, self.adapter.preparer())
        if self.num_workers == 0:
            for batch in batches:
                yield [dataset[i] for i in batch]
            return
        from torch.utils.data import DataLoader

        loader = DataLoader(
            dataset,
            batch_sampler=batches,
            num_workers=self.num_workers,
            collate_fn=_collate,
            prefetch_factor=4,
            persistent_workers=False,
        )
        yield from loader

    def _generate_batch(self, requests: list[Request], prepared: list[_Prepared]) -> list[Response]:
        """Generate for the prepared items; failed preparations and model errors become error responses."""
        results: list[Response | None] = [
            Response(error=p.error) if p.error is not None else None for p in prepared
        ]
        ready = [i for i, r in enumerate(results) if r is None]
        if ready:
            answers = self._safe_generate([requests[i] for i in ready], [prepared[i].value for i in ready])
            for i, resp in zip(ready, answers):
                results[i] = resp
        return [r if r is not None else Response(error="no response") for r in results]

    def _safe_generate(self, requests: list[Request], values: list[Any]) -> list[Response]:
        """Batched generate; if the batch fails, retry one by one so one bad item costs only itself."""
        try:
            responses = self.adapter.generate(requests, values)
            if len(responses) != len(requests):
                raise RuntimeError(f"adapter returned {len(responses)} responses for {len(requests)} requests")
            return responses
        except Exception as exc:
            if len(requests) == 1:
                return [Response(error=f"{type(exc).__name__}: {exc}")]
        out: list[Response] = []
        for req, val in zip(requests, values):
            out.extend(self._safe_generate([req], [val]))
        return out
