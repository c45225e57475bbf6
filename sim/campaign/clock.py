"""Device time for a campaign: a virtual clock per device that a crowded event loop
cannot inflate.

:class:`sim.clock.VirtualClock` counts a socket wait that ends by its real duration. With
hundreds of devices on one loop a read that is ready waits its turn behind every other
device's flash work, so device time would grow with the fleet. Here the network costs no
device time (the 8 MHz SPI flash, at tens of KiB/s, is the slow link) and a wait that
times out costs its whole window, after waiting that window scaled by ``io_time_scale``
in real time (never less than :data:`MIN_REAL_S`: a burst of connections on loopback can
see a SYN dropped and retried by the kernel a second later, while the loop is idle); if
the loop ran that timer late (it was busy with other devices, so the
I/O may simply not have had its turn), the wait is given another scaled window, up to
:data:`MAX_EXTENSIONS` times. An idle loop runs timers on time, so a real stall still
costs only its scaled window of wall time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sim.clock import VirtualClock

T = TypeVar("T")
MAX_EXTENSIONS = 20
MIN_REAL_S = 2.5
LATE_FLOOR_S = 0.02  # a timer run later than this was held up by a busy loop


class CampaignClock(VirtualClock):
    """A device's clock in a campaign; ``on_expire`` is called once when device time
    passes ``limit_s`` (checked wherever the agent yields: sleeps and socket waits)."""

    def __init__(
        self, *, io_time_scale: float, limit_s: float, on_expire: Callable[[], None]
    ) -> None:
        super().__init__(io_time_scale=io_time_scale)
        self._limit_s = limit_s
        self._on_expire: Callable[[], None] | None = on_expire
        self.extensions = 0  # timeouts deferred because the loop was busy

    def _check(self) -> None:
        if self._on_expire is not None and self.monotonic() > self._limit_s:
            expire, self._on_expire = self._on_expire, None
            expire()

    async def asleep(self, seconds: float) -> None:
        await super().asleep(seconds)
        self._check()

    async def wait_for(self, aw: Awaitable[T], timeout: float) -> T:
        window = max(0.0, timeout)
        real = max(window * self.io_time_scale, min(window, MIN_REAL_S))
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(aw)
        try:
            for _ in range(MAX_EXTENSIONS + 1):
                due = loop.time() + real
                done, _ = await asyncio.wait({task}, timeout=real)
                if done:
                    return task.result()
                if loop.time() - due < LATE_FLOOR_S:
                    break  # the timer ran on time: nothing arrived in the window
                self.extensions += 1
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self.advance(window)
        self._check()
        raise TimeoutError
