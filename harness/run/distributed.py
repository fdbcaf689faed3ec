"""Many processes, one run: rank, world size and local rank from the launcher's environment, gloo for control.

Works under ``torchrun`` (one or many nodes), ``accelerate launch``, the DeepSpeed launcher (all set ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) and ``srun`` (``SLURM_PROCID``,
``SLURM_NTASKS``, ``SLURM_LOCALID``; ``MASTER_ADDR`` / ``MASTER_PORT`` set by the job script). The global rank
decides who records the run (rank 0); the local rank decides the GPU (``cuda:LOCAL_RANK``).

The process group's key-value store (a TCP store on rank 0) carries the shared batch counters, the
progress counters and the first failure, so a rank that fails ends every rank within seconds.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from harness.errors import HarnessError, UsageError

FAILED_KEY = "harness/failed"
_POLL_SECONDS = 0.05


class RankFailed(HarnessError):
    """Another rank of this job failed; its message is in ours."""


@dataclass(frozen=True)
class Topology:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _int_env(env: Mapping[str, str], name: str) -> int:
    try:
        return int(env[name])
    except ValueError as exc:
        raise UsageError(f"environment variable {name}={env[name]!r} is not an integer") from exc


def topology_from_env(env: Mapping[str, str] | None = None) -> Topology:
    """Rank, world size and local rank as the launcher set them (one process when none did)."""
    env = os.environ if env is None else env
    if "RANK" in env and "WORLD_SIZE" in env:
        names = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
    elif "SLURM_PROCID" in env and "SLURM_NTASKS" in env:
        names = ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID")
    else:
        return Topology()
    rank, world = _int_env(env, names[0]), _int_env(env, names[1])
    local = _int_env(env, names[2]) if names[2] in env else 0
    if not 0 <= rank < world:
        raise UsageError(f"{names[0]}={rank} is not below {names[1]}={world}")
    return Topology(rank, world, local)


class Distributed:
    """The job's processes. With one process every method is a local no-op, so callers need no branches."""

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self._store: Any = None
        self._owns_group = False  # a process group started here (not, e.g., a training job's) is ended here

    @property
    def rank(self) -> int:
        return self.topology.rank

    @property
    def world_size(self) -> int:
        return self.topology.world_size

    @property
    def is_main(self) -> bool:
        return self.topology.is_main

    @property
    def active(self) -> bool:
        return self._store is not None

    @classmethod
    def from_env(cls) -> Distributed:
        """Start the gloo process group when a launcher started several processes."""
        dist = cls(topology_from_env())
        if dist.world_size > 1:
            dist._start()
        return dist

    def _start(self) -> None:
        import torch.distributed as td

        for name in ("MASTER_ADDR", "MASTER_PORT"):
            if name not in os.environ:
                raise UsageError(f"{self.world_size} processes but ${name} is not set: export MASTER_ADDR and "
                                 "MASTER_PORT in the job script (torchrun and accelerate set them)")  # fmt: skip
        if not td.is_initialized():
            td.init_process_group(
                "gloo", rank=self.rank, world_size=self.world_size, timeout=timedelta(minutes=30)
            )
            self._owns_group = True
        self._store = td.distributed_c10d._get_default_store()

    def device(self, requested: str | None) -> str | None:
        """``cuda:LOCAL_RANK`` where plain ``cuda`` is asked for (or, with several processes and no device
        named, a GPU is available); any other device string (``cpu``, ``cuda:N``, ``mps``) as given."""
        if requested not in (None, "cuda"):
            return requested
        if requested is None and self.world_size == 1:
            return None
        import torch

        if requested == "cuda" or torch.cuda.is_available():
            return f"cuda:{self.topology.local_rank}"
        return "cpu"

    # -- collectives on small Python objects -------------------------------------------------------------

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank."""
        if not self.active:
            return value
        import torch.distributed as td

        box = [value]
        td.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, value: Any) -> list[Any] | None:
        """Every rank's ``value``, in rank order, on rank 0 (None on the others)."""
        if not self.active:
            return [value]
        import torch.distributed as td

        out: list[Any] | None = [None] * self.world_size if self.is_main else None
        td.gather_object(value, out, dst=0)
        return out

    # -- the shared store: counters and the first failure ------------------------------------------------

    def add(self, key: str, amount: int) -> int:
        """Atomically add ``amount`` to the job-wide counter ``key``; its new value."""
        return int(self._store.add(key, amount))

    def fail(self, message: str) -> None:
        """Tell every rank that this one failed (the first failure is kept)."""
        if self.active:  # the store may be gone with rank 0: the launcher ends the job then
            with contextlib.suppress(Exception):
                self._store.compare_set(FAILED_KEY, "", f"rank {self.rank}: {message}")

    def check(self) -> None:
        """Raise RankFailed when another rank has failed."""
        if self.active and self._store.check([FAILED_KEY]):
            raise RankFailed(f"stopping: {self._store.get(FAILED_KEY).decode(errors='replace')}")

    def wait_for(self, key: str, total: int, on_progress: Any = None) -> None:
        """Block until the counter ``key`` reaches ``total`` (calling ``on_progress(value)``), or a rank fails."""
        while True:
            self.check()
            value = self.add(key, 0)
            if on_progress is not None:
                on_progress(value)
            if value >= total:
                return
            time.sleep(_POLL_SECONDS)

    def close(self) -> None:
        if self.active:
            import torch.distributed as td

            if self._owns_group:
                td.destroy_process_group()
            self._store = None


class Claims:
    """The batch indices one process takes from a plan of ``n`` batches.

    Alone: all of them in order. ``--shard I/N``: every N-th from I. Several processes: whatever the shared
    counter hands out, so a slow rank takes fewer batches and none waits for another.
    """

    def __init__(self, n: int, dist: Distributed | None = None, key: str = "", shard: tuple[int, int] | None = None):
        self.n, self.dist, self.key, self.shard = n, dist, key, shard

    def __iter__(self) -> Iterator[int]:
        if self.shard is not None:
            index, count = self.shard
            yield from range(index, self.n, count)
        elif self.dist is None or not self.dist.active:
            yield from range(self.n)
        else:
            while True:
                self.dist.check()
                claimed = self.dist.add(self.key, 1) - 1
                if claimed >= self.n:
                    return
                yield claimed
