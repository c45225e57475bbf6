"""Spreading independent work items over processes and machines with Dask distributed.

The simulator's campaigns (power-loss sweeps, fuzz campaigns, fleets of devices) are
lists of items whose results do not depend on each other or on where they run. An
:class:`Engine` maps a function over **chunks** of such a list:

* ``Engine(workers=N)``: a Dask ``LocalCluster`` of N single-threaded worker processes
  on this machine (the embedded case);
* ``Engine(scheduler="tcp://HOST:8786")``: an existing Dask cluster;
* ``Engine(workers=0)``: in this process, no Dask (tests, ``--shard`` in CI matrices).

Chunks are made by :func:`chunks` (round-robin by index, so the costly and the cheap
items of a sweep are spread evenly) and results come back in item order, whichever
worker ran what: the same list gives the same results on 1 worker, N workers or a
cluster. :func:`shard` takes share ``i`` of ``n`` for splitting a campaign without Dask.
The function must be importable by the workers (a module-level function).

Worker processes keep state between chunks in :func:`worker_state` (one campaign's
prepared clean run, say) and run coroutines on one event loop of their own
(:func:`run_async`), so a blob server started by one chunk serves the next.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")

ProgressFn = Callable[[int, int], None]  # (items done, items in all)
HTTP_ADDRESS = "127.0.0.1:0"  # where a LocalCluster's scheduler serves its HTTP routes


def chunks(items: Sequence[T], count: int) -> list[list[T]]:
    """``items`` in ``count`` round-robin chunks (item k goes to chunk k mod count)."""
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    count = min(count, max(1, len(items)))
    return [list(items[i::count]) for i in range(count)]


def shard(items: Sequence[T], index: int, count: int) -> list[T]:
    """Share ``index`` (0-based) of ``count``: every ``count``-th item from ``index``."""
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard must be i/n with 0 <= i < n, got {index}/{count}")
    return list(items[index::count])


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> (i, n), with a one-line error for anything else."""
    try:
        i, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like i/n (e.g. 0/4), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"--shard i/n needs 0 <= i < n, got {text!r}")
    return i, n


@dataclass(frozen=True)
class EngineConfig:
    """Where chunks run: ``workers`` local processes (0: here) or a ``scheduler``."""

    workers: int = os.cpu_count() or 1
    scheduler: str | None = None
    chunks_per_worker: int = 8  # progress granularity and load balance

    def __post_init__(self) -> None:
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 0:
            raise ValueError(f"workers must be an int >= 0, got {self.workers!r}")
        if self.scheduler is not None and "://" not in self.scheduler:
            raise ValueError(
                f"scheduler must be an address like tcp://127.0.0.1:8786, got {self.scheduler!r}"
            )


class Engine:
    """Runs ``fn(chunk, *args)`` over chunks, locally or on Dask (see the module doc)."""

    def __init__(self, config: EngineConfig | None = None) -> None:
        self.config = config or EngineConfig()
        self._client: Any = None
        self._cluster: Any = None

    def __enter__(self) -> Engine:
        cfg = self.config
        if cfg.scheduler is None and cfg.workers == 0:
            return self
        from distributed import Client, LocalCluster

        if cfg.scheduler is not None:
            self._client = Client(cfg.scheduler)
        else:
            self._cluster = LocalCluster(
                n_workers=cfg.workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                # no dashboard, and its HTTP server on a free loopback port, not on 8787
                scheduler_kwargs={"dashboard_address": HTTP_ADDRESS},
                silence_logs=40,
            )
            self._client = Client(self._cluster)
        return self

    def __exit__(self, *exc: object) -> None:
        client, cluster, self._client, self._cluster = self._client, self._cluster, None, None
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()

    @property
    def workers(self) -> int:
        """How many chunks run at once."""
        if self._client is None:
            return 1
        return max(1, len(self._client.scheduler_info().get("workers", {})))

    def map(
        self,
        fn: Callable[..., list[R]],
        items: Sequence[T],
        *args: Any,
        progress: ProgressFn | None = None,
    ) -> list[R]:
        """``fn(chunk, *args)`` returns one result per item of its chunk; all results in
        item order. ``progress(done, total)`` is called as chunks finish."""
        parts = chunks(items, self.workers * self.config.chunks_per_worker)
        order = [list(range(len(items)))[i :: len(parts)] for i in range(len(parts))]
        results: list[Any] = [None] * len(items)
        done = 0
        for part, result in self._run(fn, parts, args):
            for index, value in zip(order[part], result, strict=True):
                results[index] = value
            done += len(result)
            if progress is not None:
                progress(done, len(items))
        return results

    def _run(
        self, fn: Callable[..., list[R]], parts: list[list[T]], args: tuple[Any, ...]
    ) -> Iterator[tuple[int, list[R]]]:
        if self._client is None:
            for i, part in enumerate(parts):
                yield i, fn(part, *args)
            return
        from distributed import as_completed

        futures = {
            self._client.submit(fn, part, *args, pure=False, key=f"chunk-{i}-{time.time_ns()}"): i
            for i, part in enumerate(parts)
        }
        for future in as_completed(futures):
            yield futures[future], future.result()


# -- state kept by a worker process between chunks ----------------------------------------

_STATE: dict[str, Any] = {}
_LOOP: asyncio.AbstractEventLoop | None = None
_LOOP_LOCK = threading.Lock()


def worker_state() -> dict[str, Any]:
    """A dict that lives as long as this (worker) process: caches between chunks."""
    return _STATE


def run_async(coro: Coroutine[Any, Any, R]) -> R:
    """Run ``coro`` on this process's own event loop (started on first use, in a thread),
    so objects bound to a loop (a blob server) outlive one chunk."""
    global _LOOP
    with _LOOP_LOCK:
        if _LOOP is None:
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="sim-worker-loop", daemon=True).start()
            _LOOP = loop
    return asyncio.run_coroutine_threadsafe(coro, _LOOP).result()
