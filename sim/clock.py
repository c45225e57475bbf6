"""A virtual clock: simulated time that advances only when told to."""

import asyncio


class VirtualClock:
    """Implements :class:`agent.clock.Clock` without ever sleeping for real.

    ``sleep`` and ``asleep`` advance the time at once; devices (the chip model,
    the SPI port) call :meth:`advance` for the time their work takes.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)

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

    def __repr__(self) -> str:
        return f"VirtualClock(t={self._now:.6f}s)"
