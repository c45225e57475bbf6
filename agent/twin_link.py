"""The agent's hold on its twin: every twin call retried until it goes through.

:class:`agent.twin.TwinError` means "the cloud is not there now, try again later", never
"stop" (``agent/twin.py``). So connecting, reading the desired section and sending a
reported patch each retry on the agent's clock with capped exponential backoff and full
jitter ("Exponential Backoff And Jitter", AWS architecture blog, 2015), reconnecting
before every new try, until the call succeeds or the agent stops. A reported patch is
therefore never dropped: reports made while the link is down are sent, in the order
they were made, once it is back (a patch whose acknowledgement was lost is sent again;
a JSON merge patch applied twice changes nothing).

Desired patches sent while the link was down never arrive, so after a reconnect, once
the call in hand has gone through, the whole desired section is read again and handed
to ``on_desired`` (the agent merges it like a patch: the same instruction is a
continuation, a newer one supersedes).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from agent.clock import Clock
from agent.redact import redact
from agent.twin import Twin, TwinError

log = logging.getLogger(__name__)

T = TypeVar("T")

RETRY_BASE_S = 1.0
RETRY_CAP_S = 60.0


class TwinLink:
    """:class:`Twin` calls that retry (see the module doc); one per boot of the agent."""

    def __init__(
        self,
        twin: Twin,
        clock: Clock,
        rng: random.Random,
        *,
        on_desired: Callable[[dict[str, Any]], None],
        base_s: float = RETRY_BASE_S,
        cap_s: float = RETRY_CAP_S,
    ) -> None:
        if not 0 < base_s <= cap_s:
            raise ValueError(f"need 0 < base_s <= cap_s, got base_s={base_s}, cap_s={cap_s}")
        self.twin = twin
        self.clock = clock
        self.rng = rng
        self.on_desired = on_desired
        self.base_s = base_s
        self.cap_s = cap_s
        self.failures = 0  # twin calls that raised TwinError, over the link's life
        self.reconnects = 0
        self.busy = 0  # calls in progress (a report in hand counts until acknowledged)
        self._generation = 0  # bumped on every successful (re)connect
        self._lock = asyncio.Lock()
        self._refresh = False  # the desired section must be read again

    async def connect(self) -> None:
        """Connect, retrying until the cloud accepts."""
        await self._retry("connect", self.twin.connect, reconnect=False)
        self._generation += 1

    async def get_desired(self) -> dict[str, Any]:
        """The whole desired section."""
        return await self._retry("get_desired", self.twin.get_desired)

    async def report(self, patch: dict[str, Any]) -> None:
        """Send ``patch``; returns once the cloud acknowledged it."""
        await self._retry("report", lambda: self.twin.report(patch))

    # -- internals ------------------------------------------------------------------

    def _delay(self, attempt: int) -> float:
        """Full jitter: uniform over [0, min(cap, base * 2**(attempt-1))]."""
        return self.rng.uniform(0.0, min(self.cap_s, self.base_s * 2 ** max(0, attempt - 1)))

    async def _retry(
        self, what: str, call: Callable[[], Awaitable[T]], *, reconnect: bool = True
    ) -> T:
        self.busy += 1
        try:
            return await self._retry_loop(what, call, reconnect=reconnect)
        finally:
            self.busy -= 1

    async def _retry_loop(
        self, what: str, call: Callable[[], Awaitable[T]], *, reconnect: bool
    ) -> T:
        attempt = 0
        while True:
            seen = self._generation
            try:
                result = await call()
            except TwinError as exc:
                attempt += 1
                self.failures += 1
                delay = self._delay(attempt)
                level = logging.WARNING if attempt == 1 else logging.DEBUG  # not every try
                log.log(
                    level, "twin %s failed, retrying in %.1fs: %s", what, delay, redact(str(exc))
                )
                await self.clock.asleep(delay)
                if reconnect:
                    await self._reconnect(seen)
                continue
            if attempt:
                log.info("twin %s went through after %d failed tries", what, attempt)
            if what == "get_desired":
                self._refresh = False  # the caller holds the whole section now
            elif self._refresh:
                await self._read_desired_again()
            return result

    async def _reconnect(self, seen: int) -> None:
        """Connect again unless another caller already did since generation ``seen``."""
        async with self._lock:
            if self._generation != seen:
                return
            try:
                await self.twin.connect()
            except TwinError as exc:
                log.debug("twin reconnect failed: %s", redact(str(exc)))
                return  # the caller tries again after its next backoff
            self._generation += 1
            self.reconnects += 1
            self._refresh = True  # read once the call in hand goes through

    async def _read_desired_again(self) -> None:
        """One try at the whole desired section after a reconnect (kept pending on failure)."""
        try:
            desired = await self.twin.get_desired()
        except TwinError as exc:
            log.warning("desired section not read after reconnecting: %s", redact(str(exc)))
            return
        self._refresh = False
        self.on_desired(desired)
