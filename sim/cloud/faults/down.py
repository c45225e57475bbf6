"""``down``: the service is unreachable: the connection closes before any response byte.

toxiproxy disables a proxy (connection refused). A listening HTTP server cannot
refuse one request, so it drops the connection with RST as soon as the request
arrives; clients see the same failure to get a response.
"""

import random
from dataclasses import dataclass
from typing import ClassVar

from sim.cloud.faults.exchange import Exchange


@dataclass(frozen=True)
class Down:
    """Drop the connection without answering."""

    name: ClassVar[str] = "down"

    def apply(self, exchange: Exchange, rng: random.Random) -> None:
        exchange.drop = True
