"""Device time for a campaign: a virtual clock per device that a crowded event loop
cannot inflate.

:class:`sim.clock.VirtualClock` counts a socket wait that ends by its real duration. With
hundreds of devices on one loop a read that is ready waits its turn behind every other
device's flash work, so device time would grow with the fleet. Here the network costs
no device time (the 8 MHz SPI flash, at tens of KiB/s, is the slow link), a wait that
times out costs its whole window, and the real time waited before calling it a timeout is
the window scaled by ``io_time_scale`` plus a few times the loop's recent lag
(:class:`LoopLag`), so a read merely queued behind 999 devices is not taken for a stall.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sim.clock import VirtualClock

T = TypeVar("T")
LAG_SAMPLE_S = 0.05
LAG_ALLOWANCE = 4.0  # a timeout waits this many times the recent loop lag on top


class LoopLag:
    """How late the event loop runs a callback, sampled every ``LAG_SAMPLE_S`` (the
    largest lag of the last few seconds is kept)."""

    def __init__(self) -> None:
        self.recent_s = 0.0
        self.peak_s = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._sample())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _sample(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(LAG_SAMPLE_S)
            lag = max(0.0, time.perf_counter() - started - LAG_SAMPLE_S)
            self.peak_s = max(self.peak_s, lag)
            self.recent_s = max(lag, self.recent_s * 0.95)  # decays over a few seconds


class CampaignClock(VirtualClock):
    """A device's clock in a campaign; ``on_expire`` is called once when device time
    passes ``limit_s`` (checked wherever the agent yields: sleeps and socket waits)."""

    def __init__(
        self,
        *,
        io_time_scale: float,
        lag: LoopLag,
        limit_s: float,
        on_expire: Callable[[], None],
    ) -> None:
        super().__init__(io_time_scale=io_time_scale)
        self._lag = lag
        self._limit_s = limit_s
        self._on_expire: Callable[[], None] | None = on_expire

    def _check(self) -> None:
        if self._on_expire is not None and self.monotonic() > self._limit_s:
            expire, self._on_expire = self._on_expire, None
            expire()

    async def asleep(self, seconds: float) -> None:
        await super().asleep(seconds)
        self._check()

    async def wait_for(self, aw: Awaitable[T], timeout: float) -> T:
        window = max(0.0, timeout)
        real = window * self.io_time_scale + LAG_ALLOWANCE * self._lag.recent_s
        try:
            return await asyncio.wait_for(aw, real)
        except TimeoutError:
            self.advance(window)
            self._check()
            raise
