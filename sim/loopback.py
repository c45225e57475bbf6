"""Loopback HTTP in virtual time: a timeout fires only when nothing else can happen.

The blob server is a real HTTP peer on loopback, in the same event loop as the device.
Measured in real time, a busy machine looks like a stalled server: a read that takes
long because the CPU is busy would count as a stall. Here time that matters is
virtual and moves only when the loop is **quiet**: no callback is ready, no socket is
readable or writable (so no byte is in flight on loopback and no request is unread),
and every server handler is in a deliberate wait (a stall, a latency, a bandwidth
pause), for a few loop iterations in a row. Then the clock jumps to the next thing
that can happen: the end of a server's wait (:meth:`VirtualNetwork.sleep`) or the
earliest waiting timeout (:meth:`VirtualNetwork.wait_for`). A verdict thus depends
on the scenario and its seeds, never on how loaded the machine is.

One coordinator task runs while something waits, so several waits never look busy
to each other. Used by :class:`sim.clock.VirtualClock` once a network is attached
(:meth:`sim.clock.VirtualClock.attach_network`) and by the blob server's pauses.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class NetworkClock(Protocol):
    """What the network needs of :class:`sim.clock.VirtualClock`: read it, move it."""

    def monotonic(self) -> float: ...

    def advance_to(self, when: float) -> None: ...


QUIET_ITERATIONS = 3  # loop iterations in a row with nothing to do before time moves
HOLD_POLL_S = 0.01  # how often a hold looks whether its client left (no effect on time)


class VirtualNetwork:
    """The virtual-time side of one device's loopback I/O (see the module doc)."""

    def __init__(self, clock: NetworkClock) -> None:
        self.clock = clock
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._waiters: list[tuple[float, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._coordinator: asyncio.Task[None] | None = None

    # -- the server's deliberate waits ----------------------------------------------------

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of virtual time (a server's latency, pause or timed stall)."""
        if seconds <= 0:
            return
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.clock.monotonic() + seconds, next(self._seq), future))
        try:
            await future
        finally:
            if not future.done():
                future.cancel()

    async def hold(self, seconds: float, gone: Callable[[], bool]) -> None:
        """Send nothing for ``seconds`` of virtual time (0: forever) or until ``gone()``."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        wake = self.clock.monotonic() + seconds if seconds > 0 else float("inf")
        heapq.heappush(self._sleepers, (wake, next(self._seq), future))
        try:
            while not future.done() and not gone():
                await asyncio.wait({future}, timeout=HOLD_POLL_S)
        finally:
            if not future.done():
                future.cancel()

    def release_all(self) -> None:
        """End every server wait now (the server is stopping)."""
        for _, _, future in self._sleepers:
            if not future.done():
                future.set_result(None)
        self._sleepers.clear()

    def _release_due(self) -> None:
        now, sleepers = self.clock.monotonic(), self._sleepers
        while sleepers and (sleepers[0][0] <= now or sleepers[0][2].done()):
            _, _, future = heapq.heappop(sleepers)
            if not future.done():
                future.set_result(None)

    def _next_wake(self) -> float:
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)
        return self._sleepers[0][0] if self._sleepers else float("inf")

    # -- the device's timeouts ------------------------------------------------------------

    async def wait_for(self, aw: Awaitable[T], timeout: float) -> T:
        """``aw``'s result, or ``TimeoutError`` once ``timeout`` of virtual time passed
        with the loop quiet; virtual time does not move while ``aw`` makes progress."""
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(aw)
        expired: asyncio.Future[None] = loop.create_future()
        entry = (self.clock.monotonic() + max(0.0, timeout), expired)
        self._waiters.append(entry)
        if self._coordinator is None or self._coordinator.done():
            self._coordinator = loop.create_task(self._coordinate())
        try:
            pending: set[asyncio.Future[Any]] = {task, expired}
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                return task.result()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            raise TimeoutError
        finally:
            self._waiters.remove(entry)
            if not task.done():
                task.cancel()

    async def at(self, when: float) -> None:
        """Return once virtual time reaches ``when`` (a device-time limit, say)."""
        with contextlib.suppress(TimeoutError):
            await self.wait_for(
                asyncio.get_running_loop().create_future(), when - self.clock.monotonic()
            )

    def _expire_due(self) -> None:
        now = self.clock.monotonic()
        for deadline, expired in self._waiters:
            if deadline <= now and not expired.done():
                expired.set_result(None)

    async def _coordinate(self) -> None:
        loop: Any = asyncio.get_running_loop()
        idle = 0
        while self._waiters:
            await asyncio.sleep(0)
            self._release_due()
            self._expire_due()  # the clock passed them while the device worked
            if loop._ready or loop._selector.select(0):
                idle = 0  # something is runnable or in flight: it happens first
                continue
            idle += 1
            if idle < QUIET_ITERATIONS:
                continue
            idle = 0
            first = min((deadline for deadline, f in self._waiters if not f.done()), default=None)
            if first is None:
                continue
            wake = self._next_wake()
            if wake <= first:
                self.clock.advance_to(wake)
                self._release_due()
                continue
            self.clock.advance_to(first)
            self._expire_due()


def supported() -> bool:
    """Whether the running loop can be watched for quiet (a selector event loop)."""
    loop = asyncio.get_running_loop()
    return hasattr(loop, "_ready") and hasattr(loop, "_selector")
