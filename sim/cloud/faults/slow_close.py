"""``slow_close``: delay closing the connection after the response.

toxiproxy ``slow_close{delay}``.

The response is complete and marked ``Connection: close``; the socket stays open
for ``delay_s`` after the last body byte before the server closes it.
"""

import random
from dataclasses import dataclass
from typing import ClassVar

from sim.cloud.faults.exchange import Exchange
from sim.cloud.faults.fault import check_non_negative


@dataclass(frozen=True)
class SlowClose:
    """Hold the connection ``delay_s`` after the body, then close it."""

    name: ClassVar[str] = "slow_close"
    delay_s: float

    def __post_init__(self) -> None:
        check_non_negative(self.name, "delay_s", self.delay_s)

    def apply(self, exchange: Exchange, rng: random.Random) -> None:
        exchange.close_delay_s = max(exchange.close_delay_s, self.delay_s)
