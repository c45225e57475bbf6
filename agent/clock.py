"""The time seam: the agent never reads the wall clock or sleeps directly.

Simulation injects :class:`sim.clock.VirtualClock`, on which sleeping costs no
real time; the bench injects :class:`MonotonicClock`.
"""

import asyncio
import time
from collections.abc import Awaitable
from typing import Protocol, TypeVar, runtime_checkable

T = TypeVar("T")


@runtime_checkable
class Clock(Protocol):
    """Monotonic seconds, and a way to wait for them to pass."""

    def monotonic(self) -> float:
        """Seconds since an arbitrary origin; never goes backwards."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block until ``seconds`` have passed on this clock."""
        ...

    async def asleep(self, seconds: float) -> None:
        """Wait asynchronously until ``seconds`` have passed on this clock."""
        ...

    async def wait_for(self, aw: Awaitable[T], timeout: float) -> T:
        """Await real I/O, giving up with :class:`TimeoutError` after ``timeout`` seconds.

        Stall detection on sockets goes through here, so a simulation can
        compress the real waiting while its clock still counts the full window.
        """
        ...


class MonotonicClock:
    """Real time, for the bench and for production."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    async def wait_for(self, aw: Awaitable[T], timeout: float) -> T:
        return await asyncio.wait_for(aw, timeout)
