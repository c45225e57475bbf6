"""Shards on the project's distribution engine (:mod:`sim.distribute`): Dask workers.

One shard per worker: the engine's ``LocalCluster`` of ``workers`` single-threaded
processes by default, or the workers of the cluster at ``scheduler``. The campaign cuts
its fleet into :attr:`EngineExecutor.partitions` shards and the engine maps
:func:`run_shards` over them with one chunk per worker, so every worker runs its whole
shard at once on its own event loop (:func:`sim.distribute.run_async`), every device
against the one storage account the campaign runs (its URL is in each configuration) and
a hub replica per shard. Results come back in shard order whichever worker ran what,
with each shard's reports, not live.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Sequence

from sim.campaign.shard import ReportHook, ShardResult, ShardSpec, run_shard
from sim.distribute import Engine, EngineConfig, run_async

LOCAL_WORKERS = 2  # --workers' default when only the option's presence selects Dask
CONNECT_TIMEOUT_S = 10.0  # a --scheduler that does not answer: an error, not a hang


def run_shards(specs: Sequence[ShardSpec]) -> list[ShardResult]:
    """What a worker runs: its shards, one after another, on its own event loop (the
    engine hands each worker one chunk of one shard)."""
    return [run_async(run_shard(spec)) for spec in specs]


def scheduler_address(text: str) -> str:
    """``HOST:PORT`` or ``tcp://HOST:PORT`` (Dask's default protocol when none is given)."""
    text = text.strip()
    if not text:
        raise ValueError("--scheduler needs an address, e.g. tcp://127.0.0.1:8786")
    return text if "://" in text else f"tcp://{text}"


class EngineExecutor:
    """:class:`sim.campaign.executor.Executor` on :class:`sim.distribute.Engine`."""

    streams_reports = False

    def __init__(
        self,
        *,
        workers: int | None = None,
        scheduler: str | None = None,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
    ) -> None:
        if workers is not None and (
            isinstance(workers, bool) or not isinstance(workers, int) or workers < 1
        ):
            raise ValueError(f"--workers must be an integer >= 1, got {workers!r}")
        address = None if scheduler is None else scheduler_address(scheduler)
        try:
            config = EngineConfig(workers=workers or LOCAL_WORKERS, scheduler=address)
        except ValueError as exc:
            raise ValueError(f"--scheduler: {exc}") from None
        self._engine = Engine(config)
        self._where = (
            f"Dask scheduler {address}"
            if address is not None
            else f"Dask LocalCluster, {config.workers} worker processes"
        )
        self._start(connect_timeout_s)

    def _start(self, connect_timeout_s: float) -> None:
        """Enter the engine on a thread of its own: Dask's synchronous client must not
        start inside the campaign's running event loop."""
        import dask
        import distributed  # noqa: F401 (its config defaults, before set() below)

        def enter() -> None:
            # set() restores exactly what it found: had distributed been imported inside
            # it, its defaults would go on the way out (and close() would fail on them)
            with dask.config.set({"distributed.comm.timeouts.connect": f"{connect_timeout_s}s"}):
                self._engine.__enter__()

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            try:
                pool.submit(enter).result()
            except (OSError, TimeoutError) as exc:
                raise ValueError(f"{self._where}: cannot be reached ({exc})") from None

    @property
    def partitions(self) -> int:
        return self._engine.workers

    @property
    def description(self) -> str:
        return self._where

    async def run(
        self, shards: Sequence[ShardSpec], *, on_report: ReportHook | None = None
    ) -> list[ShardResult]:
        # The campaign's loop keeps serving the storage account while the workers run.
        return await asyncio.to_thread(self._engine.map, run_shards, list(shards))

    async def close(self) -> None:
        await asyncio.to_thread(self._engine.__exit__, None, None, None)
