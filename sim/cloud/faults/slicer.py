"""``slicer``: send the body in small writes with a delay between them.

toxiproxy ``slicer{average_size, size_variation, delay}``: each write is
``average_size`` ± uniform(``size_variation``) bytes, separated by ``delay_s``.
"""

import random
from dataclasses import dataclass
from typing import ClassVar

from sim.cloud.faults.exchange import Exchange
from sim.cloud.faults.fault import check_int, check_non_negative


@dataclass(frozen=True)
class Slicer:
    """Small writes of about ``average_size`` bytes, ``delay_s`` apart."""

    name: ClassVar[str] = "slicer"
    average_size: int
    size_variation: int = 0
    delay_s: float = 0.0

    def __post_init__(self) -> None:
        check_int(self.name, "average_size", self.average_size)
        check_int(self.name, "size_variation", self.size_variation)
        check_non_negative(self.name, "delay_s", self.delay_s)
        if self.average_size == 0:
            raise ValueError(f"{self.name}.average_size must be > 0")
        if self.size_variation >= self.average_size:
            raise ValueError(
                f"{self.name}.size_variation must be below average_size "
                f"({self.size_variation} >= {self.average_size})"
            )

    def apply(self, exchange: Exchange, rng: random.Random) -> None:
        exchange.slice_size = self.average_size
        exchange.slice_variation = self.size_variation
        exchange.slice_delay_s = self.delay_s
