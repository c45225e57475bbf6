"""Where a campaign's shards run: the seam a distribution engine plugs into.

An :class:`Executor` says how many shards it wants and runs them, each a
:class:`~sim.campaign.shard.ShardSpec` in and a :class:`~sim.campaign.shard.ShardResult`
out (plain picklable data). :class:`InProcessExecutor` runs one shard on the campaign's
own event loop and streams every report to the live view;
:class:`sim.campaign.engine_executor.EngineExecutor` runs one shard per Dask worker on the
project's distribution engine (:mod:`sim.distribute`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

from sim.campaign.plan import DeviceSpec
from sim.campaign.shard import ReportHook, ShardResult, ShardSpec, run_shard


class Executor(Protocol):
    """Runs shards; ``partitions`` is how many the campaign should cut the fleet into."""

    @property
    def partitions(self) -> int: ...

    @property
    def description(self) -> str: ...

    @property
    def streams_reports(self) -> bool:
        """Whether ``on_report`` sees every report as it happens (else only the end)."""
        ...

    async def run(
        self, shards: Sequence[ShardSpec], *, on_report: ReportHook | None = None
    ) -> list[ShardResult]: ...

    async def close(self) -> None: ...


class InProcessExecutor:
    """Every device on the caller's event loop, in one shard."""

    partitions = 1
    description = "in process (one event loop)"
    streams_reports = True

    async def run(
        self, shards: Sequence[ShardSpec], *, on_report: ReportHook | None = None
    ) -> list[ShardResult]:
        return list(await asyncio.gather(*(run_shard(s, on_report=on_report) for s in shards)))

    async def close(self) -> None:
        return None


def partition(devices: Sequence[DeviceSpec], parts: int) -> list[tuple[DeviceSpec, ...]]:
    """``parts`` interleaved slices (device i goes to slice i mod parts), so every slice
    holds a like share of each wave; empty slices are dropped."""
    slices = [tuple(devices[i::parts]) for i in range(max(1, parts))]
    return [s for s in slices if s]


def executor_for(*, workers: int | None, scheduler: str | None) -> Executor:
    """In process by default; ``workers`` (a Dask LocalCluster) or ``scheduler`` (an
    existing Dask cluster's address) select the distribution engine."""
    if workers is None and scheduler is None:
        return InProcessExecutor()
    from sim.campaign.engine_executor import EngineExecutor  # Dask only when used

    return EngineExecutor(workers=workers, scheduler=scheduler)
