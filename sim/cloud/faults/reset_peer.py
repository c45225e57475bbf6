"""``reset_peer``: reset the TCP connection (RST) after N body bytes.

toxiproxy ``reset_peer{timeout}``; the server sets ``SO_LINGER`` to (on, 0)
and closes, so the kernel sends RST instead of FIN (socket(7), tcp(7)).
"""

import random
from dataclasses import dataclass
from typing import ClassVar

from sim.cloud.faults.exchange import Exchange
from sim.cloud.faults.fault import check_int, check_non_negative


@dataclass(frozen=True)
class ResetPeer:
    """Send ``after_bytes`` body bytes, wait ``delay_s``, then RST."""

    name: ClassVar[str] = "reset_peer"
    after_bytes: int = 0
    delay_s: float = 0.0

    def __post_init__(self) -> None:
        check_int(self.name, "after_bytes", self.after_bytes)
        check_non_negative(self.name, "delay_s", self.delay_s)

    def apply(self, exchange: Exchange, rng: random.Random) -> None:
        exchange.cut(self.after_bytes, "reset")
        exchange.reset_delay_s = max(exchange.reset_delay_s, self.delay_s)
