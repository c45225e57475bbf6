"""A virtual clock: simulated time that advances only when told to."""

import asyncio
import time
from collections.abc import Awaitable
from typing import TypeVar

from sim.loopback import VirtualNetwork

T = TypeVar("T")


class VirtualClock:
    """Implements :class:`agent.clock.Clock` without ever sleeping for real.

    ``sleep`` and ``asleep`` advance the time at once; devices (the chip model,
    the SPI port) call :meth:`advance` for the time their work takes.

    With a network attached (:meth:`attach_network`, the scenario runner's way) a
    :meth:`wait_for` times out in virtual time, when the loop is quiet
    (:mod:`sim.loopback`). Without one (many devices sharing a server), real I/O
    is waited for in real time: a wait that ends
    counts its real duration, and a wait that times out counts the whole
    ``timeout`` while having waited only ``timeout * io_time_scale`` real
    seconds. A 30 s stall window thus costs 0.3 s of wall time by default: short
    enough for tests, long enough that a loaded machine is not taken for a stall.
    """

    def __init__(self, start: float = 0.0, *, io_time_scale: float = 0.01) -> None:
        if not 0 < io_time_scale <= 1:
            raise ValueError(f"io_time_scale must be in (0, 1], got {io_time_scale}")
        self._now = float(start)
        self.io_time_scale = io_time_scale
        self.network: VirtualNetwork | None = None

    def attach_network(self) -> VirtualNetwork:
        """Make loopback waits virtual (:mod:`sim.loopback`): ``wait_for`` then times out
        only when nothing else can happen, whatever the machine's load."""
        if self.network is None:
            self.network = VirtualNetwork(self)
        return self.network

    def monotonic(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (negative values are refused)."""
        if seconds < 0:
            raise ValueError(f"time cannot go backwards (advance by {seconds} s)")
        self._now += seconds

    def advance_to(self, when: float) -> None:
        """Move time forward to ``when`` if it lies in the future."""
        if when > self._now:
            self._now = when

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._now += seconds

    async def asleep(self, seconds: float) -> None:
        if seconds > 0:
            self._now += seconds
        await asyncio.sleep(0)

    async def wait_for(self, aw: Awaitable[T], timeout: float) -> T:
        if self.network is not None:
            return await self.network.wait_for(aw, timeout)
        started = time.perf_counter()
        try:
            result = await asyncio.wait_for(aw, max(0.0, timeout) * self.io_time_scale)
        except TimeoutError:
            self._now += max(0.0, timeout)
            raise
        self._now += time.perf_counter() - started
        return result

    def __repr__(self) -> str:
        return f"VirtualClock(t={self._now:.6f}s)"
