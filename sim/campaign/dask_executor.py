"""Shards on Dask workers: a minimal partitioning over ``distributed``.

One shard per worker (``LocalCluster(n_workers=N, threads_per_worker=1)`` by default, or
the workers of the cluster at ``scheduler``), each :func:`sim.campaign.shard.run_shard_sync`
on its own event loop in its own process, every device against the one storage account
the campaign runs (its URL is in each configuration) and a hub replica per shard.
Reports come back with the shard's result, not live.

The project's distribution engine (shared with the explorer) is to replace this module:
it only has to implement :class:`sim.campaign.executor.Executor`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from sim.campaign.shard import ReportHook, ShardResult, ShardSpec, run_shard_sync


class DaskExecutor:
    streams_reports = False

    def __init__(self, *, workers: int | None = None, scheduler: str | None = None) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise ValueError(
                "--workers/--scheduler need dask's distributed package "
                "(pip install 'dask[distributed]')"
            ) from None
        if workers is not None and (isinstance(workers, bool) or workers < 1):
            raise ValueError(f"--workers must be >= 1, got {workers!r}")
        self._cluster: Any = None
        if scheduler is not None:
            self._client = Client(scheduler, timeout="10s")
            self._where = f"Dask scheduler {scheduler}"
        else:
            self._cluster = LocalCluster(
                n_workers=workers or 2,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                host="127.0.0.1",
            )
            self._client = Client(self._cluster)
            self._where = f"Dask LocalCluster, {workers or 2} worker processes"
        self._workers = max(1, len(self._client.scheduler_info()["workers"]))

    @property
    def partitions(self) -> int:
        return self._workers

    @property
    def description(self) -> str:
        return self._where

    async def run(
        self, shards: Sequence[ShardSpec], *, on_report: ReportHook | None = None
    ) -> list[ShardResult]:
        futures = [self._client.submit(run_shard_sync, s, pure=False) for s in shards]
        # The campaign's loop keeps serving the storage account while the workers run.
        return list(await asyncio.gather(*(asyncio.to_thread(f.result) for f in futures)))

    async def close(self) -> None:
        await asyncio.to_thread(self._client.close)
        if self._cluster is not None:
            await asyncio.to_thread(self._cluster.close)
