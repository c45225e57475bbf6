"""``bandwidth``: cap the body's rate in bytes per second (toxiproxy ``bandwidth{rate}``)."""

import random
from dataclasses import dataclass
from typing import ClassVar

from sim.cloud.faults.exchange import Exchange
from sim.cloud.faults.fault import check_positive


@dataclass(frozen=True)
class Bandwidth:
    """Send the body at no more than ``rate_bps`` bytes per second; the lowest cap wins."""

    name: ClassVar[str] = "bandwidth"
    rate_bps: float

    def __post_init__(self) -> None:
        check_positive(self.name, "rate_bps", self.rate_bps)

    def apply(self, exchange: Exchange, rng: random.Random) -> None:
        if exchange.rate_bps is None or self.rate_bps < exchange.rate_bps:
            exchange.rate_bps = float(self.rate_bps)
