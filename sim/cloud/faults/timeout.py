"""``timeout``: stall: hold the connection open sending nothing, then close it.

toxiproxy ``timeout{timeout}`` (0 = hold forever). Here 0 holds until the
client goes away (or the server stops). ``after_bytes`` None stalls before the
status line; a number stalls after the headers and that many body bytes, the
case a downloader's read timeout must catch.
"""

import random
from dataclasses import dataclass
from typing import ClassVar

from sim.cloud.faults.exchange import Exchange
from sim.cloud.faults.fault import check_int, check_non_negative


@dataclass(frozen=True)
class Timeout:
    """Send nothing for ``timeout_s`` (0 = until the client leaves), then close."""

    name: ClassVar[str] = "timeout"
    timeout_s: float = 0.0
    after_bytes: int | None = None

    def __post_init__(self) -> None:
        check_non_negative(self.name, "timeout_s", self.timeout_s)
        if self.after_bytes is not None:
            check_int(self.name, "after_bytes", self.after_bytes)

    def apply(self, exchange: Exchange, rng: random.Random) -> None:
        exchange.stall(self.timeout_s, self.after_bytes)
