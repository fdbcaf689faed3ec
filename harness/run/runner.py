"""Turns a task's requests into responses: one batch plan, cache lookup, DataLoader workers for
preprocessing, the adapter's batched generate, and a progress bar with samples/s.

The plan is made once over every distinct request of the task, cached or not, with the run's batch size,
so a batch has the same members in an uninterrupted run, a resumed one, a ``--shard`` and at any number of
processes; a batch is answered from the cache only when all its members are there, else generated whole.
Processes claim whole batches (``harness.run.distributed.Claims``) and rank 0 gathers the answers.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
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

from harness.adapter import ModelAdapter, generate_or_split
from harness.results.schema import Timing
from harness.run.distributed import Claims, Distributed, Topology
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


class _Batches:
    """A batch sampler over batches that are only known as they are claimed (an iterable, used once)."""

    def __init__(self, batches: Iterable[list[int]]) -> None:
        self._batches = iter(batches)

    def __iter__(self) -> Iterator[list[int]]:
        return self._batches


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


@dataclass
class _Outcome:
    """What one process answered for a task: responses by request key, and how many it generated."""

    responses: dict[str, Response]
    n_generated: int = 0


class Runner:
    def __init__(
        self,
        adapter: ModelAdapter,
        cache: ResponseCache | None,
        batch_size: int = 16,
        num_workers: int = 0,
        console: Console | None = None,
        show_progress: bool = True,
        dist: Distributed | None = None,
        shard: tuple[int, int] | None = None,
    ) -> None:
        self.adapter = adapter
        self.cache = cache
        self.batch_size = max(1, batch_size)
        self.num_workers = max(0, num_workers)
        self.console = console or Console(stderr=True)
        self.show_progress = show_progress
        self.dist = dist or Distributed(Topology())
        self.shard = shard
        self.job = ""  # a key unique to the run: it names the shared counters of several processes

    def answer(self, label: str, requests: Sequence[Request]) -> tuple[list[Response | None], Timing]:
        """Responses in the order of ``requests`` (on rank 0; other ranks get an empty list). Identical requests
        are generated once; with ``shard``, only the shard's batches are answered (the others are None)."""
        start = time.perf_counter()
        keys = [r.key() for r in requests]
        distinct = dict(zip(keys, requests))  # one request per key (identical requests share the key)
        outcome = self._answer_batches(label, list(distinct), list(distinct.values()))
        gathered = self.dist.gather(outcome)
        if gathered is None:
            return [], Timing()
        by_key = {key: response for part in gathered for key, response in part.responses.items()}
        responses = [by_key.get(k) for k in keys]
        n_generated = sum(part.n_generated for part in gathered)
        gen_seconds = time.perf_counter() - start
        return responses, Timing(
            generate_seconds=gen_seconds,
            n_requests=len(requests),
            n_generated=n_generated,
            n_cached=sum(1 for r in responses if r is not None and r.cached),
            samples_per_second=(n_generated / gen_seconds) if n_generated and gen_seconds > 0 else None,
            output_tokens=sum(r.output_tokens for r in by_key.values() if not r.cached),
        )

    def _answer_batches(self, label: str, keys: list[str], requests: list[Request]) -> _Outcome:
        """Answer the batches of the plan that this process claims: from the cache when all their members are
        there, else generated whole (and cached)."""
        fingerprint = self.adapter.fingerprint
        cached = self.cache.get_many(fingerprint, keys) if self.cache else {}
        batches = plan_batches(requests, self.batch_size, self.adapter.sort_key)
        mine = list(Claims(len(batches), shard=self.shard)) if self.shard else None
        total = sum(len(batches[i]) for i in mine) if mine is not None else len(keys)
        counter = f"{self.job}/{label}"
        outcome = _Outcome({})
        progress = self._progress()
        with progress:
            n_cached = sum(1 for k in keys if k in cached)
            bar = progress.add_task(f"{label} ({n_cached} cached)" if n_cached else label, total=total)

            def advance(members: int) -> None:
                if self.dist.active:
                    progress.update(bar, completed=self.dist.add(f"{counter}/done", members))
                else:
                    progress.advance(bar, members)

            def uncached() -> Iterator[list[int]]:
                for index in mine if mine is not None else Claims(len(batches), self.dist, f"{counter}/next"):
                    batch = batches[index]
                    if all(keys[i] in cached for i in batch):
                        outcome.responses.update((keys[i], cached[keys[i]]) for i in batch)
                        advance(len(batch))
                    else:
                        yield batch

            for prepared in self._prepared_batches(requests, uncached()):
                responses = self._generate_batch([requests[p.index] for p in prepared], prepared)
                pairs = [(keys[p.index], r) for p, r in zip(prepared, responses)]
                outcome.responses.update(pairs)
                outcome.n_generated += len(pairs)
                if self.cache:
                    self.cache.put_many(fingerprint, pairs)
                advance(len(pairs))
            if self.dist.active:
                self.dist.wait_for(f"{counter}/done", total, lambda done: progress.update(bar, completed=done))
        return outcome

    def _progress(self) -> Progress:
        return Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            SampleRateColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self.console,
            disable=not self.show_progress or not self.dist.is_main,
        )

    def _prepared_batches(self, todo: list[Request], batches: Iterable[list[int]]) -> Iterator[list[_Prepared]]:
        dataset = _PreparedRequests(todo, self.adapter.preparer())
        if self.num_workers == 0:
            for batch in batches:
                yield [dataset[i] for i in batch]
            return
        from torch.utils.data import DataLoader

        loader = DataLoader(
            dataset,
            batch_sampler=_Batches(batches),
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
            answers = generate_or_split(self.adapter, [requests[i] for i in ready], [prepared[i].value for i in ready])
            for i, resp in zip(ready, answers):
                results[i] = resp
        return [r if r is not None else Response(error="no response") for r in results]
