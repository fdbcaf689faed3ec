"""Batches concurrent requests into ``adapter.generate`` calls (the worker behind ``harness serve``).

One worker thread owns the adapter: it takes the first waiting request, collects whatever else
arrives within a few milliseconds (up to the batch size), prepares each request (the adapter's
preparer), and generates per group of equal generation settings, as the runner does. A failed batch
is retried one request at a time, so one bad request costs only itself.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.adapter import ModelAdapter, generate_or_split
from harness.types import Request, Response

SHUTDOWN = "the server is shutting down"


@dataclass
class Job:
    """One request waiting for its answer. ``bad_input`` is set when preparation rejected it."""

    request: Request
    done: threading.Event = field(default_factory=threading.Event)
    response: Response | None = None
    bad_input: str | None = None

    def finish(self, response: Response | None = None, bad_input: str | None = None) -> None:
        self.response, self.bad_input = response, bad_input
        self.done.set()


@dataclass
class BatchStats:
    requests: int = 0
    batches: int = 0  # adapter.generate calls
    largest: int = 0  # most requests in one generate call

    def as_dict(self) -> dict[str, int]:
        return {"requests": self.requests, "batches": self.batches, "largest_batch": self.largest}


CLOSE_WAIT_S = 10.0  # how long a stop waits for the batch in flight


class Batcher:
    def __init__(self, adapter: ModelAdapter, batch_size: int = 8, wait_s: float = 0.005) -> None:
        self.adapter = adapter
        self.batch_size = max(1, batch_size)
        self.wait_s = max(0.0, wait_s)
        self.stats = BatchStats()
        self._preparer = adapter.preparer()
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._closed = False
        self._lock = threading.Lock()  # a job is never queued behind the shutdown marker
        self._thread = threading.Thread(target=self._loop, name="harness-serve-batcher", daemon=True)
        self._thread.start()

    def submit(self, request: Request) -> Job:
        """Queue a request and wait for its answer."""
        job = Job(request)
        with self._lock:
            if self._closed:
                job.finish(Response(error=SHUTDOWN))
                return job
            self._queue.put(job)
        job.done.wait()
        return job

    def _collect(self, first: Job) -> tuple[list[Job], bool]:
        """``first`` and what else arrives before the deadline; True when a shutdown was seen."""
        jobs = [first]
        deadline = time.monotonic() + self.wait_s
        while len(jobs) < self.batch_size:
            try:
                job = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if job is None:
                return jobs, True
            jobs.append(job)
        return jobs, False

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                break
            jobs, stop = self._collect(first)
            try:
                self._run(jobs)
            except Exception as exc:  # never leave a client waiting
                for job in jobs:
                    if not job.done.is_set():
                        job.finish(Response(error=f"{type(exc).__name__}: {exc}"))
            if stop:
                break
        self._drain()

    def _drain(self) -> None:
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                return
            if job is not None:
                job.finish(Response(error=SHUTDOWN))

    def _run(self, jobs: list[Job]) -> None:
        ready: dict[Any, list[tuple[Job, Any]]] = {}
        for job in jobs:
            try:
                value = self._preparer(job.request)
            except Exception as exc:  # unreadable image, placeholder mismatch...
                job.finish(bad_input=f"{type(exc).__name__}: {exc}")
                continue
            req = job.request
            ready.setdefault((req.generation, req.system, req.raw), []).append((job, value))
        for group in ready.values():
            responses = self._generate([j.request for j, _ in group], [v for _, v in group])
            for (job, _), response in zip(group, responses):
                job.finish(response)

    def _generate(self, requests: Sequence[Request], values: Sequence[Any]) -> list[Response]:
        return generate_or_split(self.adapter, requests, values, self._count)

    def _count(self, size: int) -> None:
        self.stats.batches += 1
        self.stats.requests += size
        self.stats.largest = max(self.stats.largest, size)

    def close(self, wait_s: float = CLOSE_WAIT_S) -> bool:
        """Stop the worker: requests still queued get an error at once, the batch in flight gets ``wait_s`` to
        finish (a stop is never held up longer; the worker is a daemon thread). False if it did not finish."""
        with self._lock:
            if self._closed:
                return not self._thread.is_alive()
            self._closed = True
            self._drain()
            self._queue.put(None)
        self._thread.join(timeout=wait_s)
        return not self._thread.is_alive()
