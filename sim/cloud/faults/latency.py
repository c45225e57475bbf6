"""``latency``: delay the response by a time plus or minus a jitter.

toxiproxy's ``latency{latency, jitter}`` delays every chunk; an HTTP client
sees that as a delay before the first byte, which is what this fault adds.
"""

import random
from dataclasses import dataclass
from typing import ClassVar

from sim.cloud.faults.exchange import Exchange
from sim.cloud.faults.fault import check_non_negative


@dataclass(frozen=True)
class Latency:
    """Wait ``latency_s`` ± uniform(``jitter_s``) (never below 0) before the status line."""

    name: ClassVar[str] = "latency"
    latency_s: float
    jitter_s: float = 0.0

    def __post_init__(self) -> None:
        check_non_negative(self.name, "latency_s", self.latency_s)
        check_non_negative(self.name, "jitter_s", self.jitter_s)

    def apply(self, exchange: Exchange, rng: random.Random) -> None:
        jitter = rng.uniform(-self.jitter_s, self.jitter_s) if self.jitter_s else 0.0
        exchange.delay_s += max(0.0, self.latency_s + jitter)
