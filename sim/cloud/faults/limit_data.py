"""``limit_data``: close the connection cleanly after N body bytes.

toxiproxy ``limit_data{bytes}`` counts every byte of the stream; here the count
is of body bytes, the quantity a resuming downloader reasons about. The
response still announces its full Content-Length, so the client sees a body
cut short by an orderly close (FIN).
"""

import random
from dataclasses import dataclass
from typing import ClassVar

from sim.cloud.faults.exchange import Exchange
from sim.cloud.faults.fault import check_int


@dataclass(frozen=True)
class LimitData:
    """Send ``bytes`` body bytes, then close (FIN)."""

    name: ClassVar[str] = "limit_data"
    bytes: int

    def __post_init__(self) -> None:
        check_int(self.name, "bytes", self.bytes)

    def apply(self, exchange: Exchange, rng: random.Random) -> None:
        exchange.cut(self.bytes, "close")
