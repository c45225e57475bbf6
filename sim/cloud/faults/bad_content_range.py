"""``bad_content_range``: a 206 whose Content-Range lies about the start or the total.

The body is the bytes actually asked for; only the header is wrong (RFC 9110
§14.4 says it names the served range), so a client that trusts it misplaces data.
"""

import random
from dataclasses import dataclass
from typing import ClassVar

from sim.cloud.faults.exchange import Exchange
from sim.cloud.faults.fault import check_int


@dataclass(frozen=True)
class BadContentRange:
    """Shift the announced start and end by ``shift`` bytes and/or announce ``total``."""

    name: ClassVar[str] = "bad_content_range"
    shift: int = 0
    total: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.shift, bool) or not isinstance(self.shift, int):
            raise ValueError(f"{self.name}.shift must be an integer, got {self.shift!r}")
        if self.total is not None:
            check_int(self.name, "total", self.total)
        if self.shift == 0 and self.total is None:
            raise ValueError(f"{self.name} needs a non-zero shift or a total")

    def apply(self, exchange: Exchange, rng: random.Random) -> None:
        exchange.content_range_shift += self.shift
        if self.total is not None:
            exchange.content_range_total = self.total
