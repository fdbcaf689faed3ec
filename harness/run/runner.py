"""Turns a task's requests into responses: one batch plan, cache lookup, DataLoader workers for
preprocessing, the adapter's batched generate, and a progress bar with samples/s.

Each distinct image is prepared once per run when the adapter's preparer can share per-image work
(``harness.adapter.ImageSharingPreparer``): the main process keeps the prepared images in a bounded LRU
cache (``HARNESS_IMAGE_CACHE_MB``, default 1024; 0 turns reuse off) and, when it hands a batch to a
worker, names the images an earlier batch already prepares; the worker prepares the batch's other images
once each and leaves the requests of named images to the main process, which fills them from the cache.

The plan is made once over every distinct request of the task, cached or not, with the run's batch size,
so a batch has the same members in an uninterrupted run, a resumed one, a ``--shard`` and at any number of
processes; a batch is answered from the cache only when all its members are there, else generated whole.
Processes claim whole batches (``harness.run.distributed.Claims``) and rank 0 gathers the answers.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
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

from harness.adapter import ImageSharingPreparer, ModelAdapter, generate_or_split
from harness.results.schema import Timing
from harness.run.distributed import Claims, Distributed, Topology
from harness.run.response_cache import ResponseCache
from harness.types import ImageRef, Request, Response

IMAGE_CACHE_ENV = "HARNESS_IMAGE_CACHE_MB"
DEFAULT_IMAGE_CACHE_MB = 1024


@dataclass
class _Prepared:
    """A request after CPU preparation: either the adapter's input or the error that stopped it
    (``deferred``: it needs an image that an earlier batch prepares; the main process finishes it)."""

    index: int
    value: Any = None
    error: str | None = None
    deferred: bool = False


@dataclass
class _PreparedBatch:
    """A batch's prepared requests and the images prepared for it: key -> (value, error)."""

    items: list[_Prepared]
    images: dict[str, tuple[Any, str | None]] = field(default_factory=dict)
    reused: int = 0  # image lookups served by an image prepared earlier in the batch


class _Deferred(Exception):
    """The image is prepared by an earlier batch; the main process fills it in from the run's image cache."""


class _ImageFailed(Exception):
    """An image whose preparation failed before (the message is the first failure's)."""


def _failure(exc: Exception) -> str:
    return str(exc) if isinstance(exc, _ImageFailed) else f"{type(exc).__name__}: {exc}"


def _where(request: Request) -> str:
    return ", ".join(im.describe() for im in request.images)


# One request of a shared-image batch: (index, the key of each of its images, the keys prepared elsewhere)
_Item = tuple[int, tuple[str, ...], frozenset[str]]


class _PreparedRequests:
    """Map-style dataset running the adapter's preparer; errors become data, not exceptions.

    ``dataset[i]`` prepares one request on its own; ``dataset.__getitems__(items)`` (what a DataLoader
    worker calls for a whole batch) prepares each image of the batch once, and defers requests whose
    images an earlier batch prepares.
    """

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
            return _Prepared(index, error=f"{_failure(exc)} ({_where(request)})")

    def __getitems__(self, items: list[int] | list[_Item]) -> list[_Prepared] | _PreparedBatch:
        if not items or not isinstance(items[0], tuple):  # plain indices: each request on its own
            return [self[i] for i in items]  # type: ignore[index]
        return self._shared(items)  # type: ignore[arg-type]

    def _shared(self, items: list[_Item]) -> _PreparedBatch:
        preparer = self.preparer
        assert isinstance(preparer, ImageSharingPreparer)
        batch = _PreparedBatch([])
        for index, keys, elsewhere in items:
            request = self.requests[index]
            key_of = {id(ref): key for ref, key in zip(request.images, keys)}

            def image(ref: ImageRef, key_of: dict[int, str] = key_of, elsewhere: frozenset[str] = elsewhere) -> Any:
                key = key_of[id(ref)]
                if key in batch.images:
                    batch.reused += 1
                    value, error = batch.images[key]
                    if error is not None:
                        raise _ImageFailed(error)
                    return value
                if key in elsewhere:
                    raise _Deferred(key)
                try:
                    value = preparer.image(ref)
                except Exception as exc:
                    batch.images[key] = (None, _failure(exc))
                    raise
                batch.images[key] = (value, None)
                return value

            try:
                batch.items.append(_Prepared(index, value=preparer.prepare(request, image)))
            except _Deferred:
                batch.items.append(_Prepared(index, deferred=True))
            except Exception as exc:  # an unreadable image must not stop the run
                batch.items.append(_Prepared(index, error=f"{_failure(exc)} ({_where(request)})"))
        return batch


def _size_of(value: Any) -> int:
    """Bytes a prepared image holds (arrays, tensors, PIL images; 1 KiB for anything else)."""
    nbytes = getattr(value, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes
    size, bands = getattr(value, "size", None), getattr(value, "getbands", None)
    if isinstance(size, tuple) and len(size) == 2 and callable(bands):
        return int(size[0]) * int(size[1]) * len(bands())
    return 1024


@dataclass
class ImageCounts:
    """How a run's images were prepared: ``prepared`` computations, ``reused`` lookups served without one."""

    prepared: int = 0
    reused: int = 0


class ImageCache:
    """The run's prepared images by key, least recently used dropped first beyond ``max_bytes``."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[str, tuple[Any, str | None, int]] = OrderedDict()

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def get(self, key: str) -> tuple[Any, str | None] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0], entry[1]

    def put(self, key: str, value: Any, error: str | None) -> None:
        size = 0 if error is not None else _size_of(value)
        if size > self.max_bytes:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= old[2]
        self._entries[key] = (value, error, size)
        self.bytes += size
        while self.bytes > self.max_bytes:
            _, (_, _, dropped) = self._entries.popitem(last=False)
            self.bytes -= dropped


def default_image_cache_bytes() -> int:
    """The image cache's bound from ``HARNESS_IMAGE_CACHE_MB`` (default 1024 MiB; 0 turns reuse off)."""
    raw = os.environ.get(IMAGE_CACHE_ENV, "").strip()
    try:
        megabytes = float(raw) if raw else DEFAULT_IMAGE_CACHE_MB
    except ValueError:
        megabytes = DEFAULT_IMAGE_CACHE_MB
    return max(0, int(megabytes * 2**20))


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
        image_cache_bytes: int | None = None,
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
        max_bytes = default_image_cache_bytes() if image_cache_bytes is None else max(0, image_cache_bytes)
        self.images = ImageCache(max_bytes)  # prepared images shared by requests of the same image, all tasks
        self.image_counts = ImageCounts()

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
        preparer = self.adapter.preparer()
        dataset = _PreparedRequests(todo, preparer)
        if self.images.max_bytes > 0 and isinstance(preparer, ImageSharingPreparer):
            yield from self._shared_image_batches(dataset, preparer, batches)
            return
        if self.num_workers == 0:
            for batch in batches:
                yield [dataset[i] for i in batch]
            return
        yield from self._loader(dataset, batches)

    def _loader(self, dataset: _PreparedRequests, batches: Iterable[Any]) -> Iterator[Any]:
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

    def _shared_image_batches(
        self, dataset: _PreparedRequests, preparer: ImageSharingPreparer, batches: Iterable[list[int]]
    ) -> Iterator[list[_Prepared]]:
        """Batches prepared with each distinct image prepared once: a batch names the images that the cache
        holds or an earlier batch (still being prepared) will bring, and the main process fills those in."""
        settings = preparer.image_settings
        coming: set[str] = set()  # keys handed to a batch whose result has not come back yet

        def key(ref: ImageRef) -> str:
            return f"{settings}\0{ref.identity()}"

        def items() -> Iterator[list[_Item]]:
            for batch in batches:
                planned: list[_Item] = []
                new: set[str] = set()
                for i in batch:
                    keys = tuple(key(ref) for ref in dataset.requests[i].images)
                    planned.append((i, keys, frozenset(k for k in keys if k in coming or k in self.images)))
                    new.update(keys)
                coming.update(new)
                yield planned

        def cached(ref: ImageRef) -> Any:
            k = key(ref)
            found = self.images.get(k)
            if found is None:  # dropped from the cache before its batch came back (or never prepared): here
                self.image_counts.prepared += 1
                try:
                    found = (preparer.image(ref), None)
                except Exception as exc:
                    found = (None, _failure(exc))
                self.images.put(k, *found)
            else:
                self.image_counts.reused += 1
            value, error = found
            if error is not None:
                raise _ImageFailed(error)
            return value

        if self.num_workers == 0:
            results: Iterator[_PreparedBatch] = (dataset._shared(planned) for planned in items())
        else:
            results = self._loader(dataset, items())
        for result in results:
            for k, (value, error) in result.images.items():
                self.images.put(k, value, error)
                coming.discard(k)
            self.image_counts.prepared += len(result.images)
            self.image_counts.reused += result.reused
            for item in result.items:
                if item.deferred:
                    request = dataset.requests[item.index]
                    try:
                        item.value, item.deferred = preparer.prepare(request, cached), False
                    except Exception as exc:
                        item.deferred, item.error = False, f"{_failure(exc)} ({_where(request)})"
            yield result.items

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
