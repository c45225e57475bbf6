"""``short_body``: Content-Length announces more bytes than are sent, then the connection closes.

RFC 9112 §6.3: a message whose connection closes before Content-Length bytes
arrive is incomplete, and the client must treat it so.
"""

import random
from dataclasses import dataclass
from typing import ClassVar

from sim.cloud.faults.exchange import Exchange
from sim.cloud.faults.fault import check_int


@dataclass(frozen=True)
class ShortBody:
    """Withhold the last ``missing`` bytes of the body (at least 1), then close (FIN)."""

    name: ClassVar[str] = "short_body"
    missing: int = 1

    def __post_init__(self) -> None:
        check_int(self.name, "missing", self.missing)
        if self.missing == 0:
            raise ValueError(f"{self.name}.missing must be > 0")

    def apply(self, exchange: Exchange, rng: random.Random) -> None:
        exchange.missing_bytes = max(exchange.missing_bytes, self.missing)
