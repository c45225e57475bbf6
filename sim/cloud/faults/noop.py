"""``noop``: the reference fault; matches like any other and changes nothing.

Useful to count or tag requests in the event log, and as the worked example of
the :class:`~sim.cloud.faults.fault.Fault` interface (toxiproxy's ``NoopToxic``).
"""

import random
from dataclasses import dataclass
from typing import ClassVar

from sim.cloud.faults.exchange import Exchange


@dataclass(frozen=True)
class Noop:
    """Leave the exchange as it is."""

    name: ClassVar[str] = "noop"

    def apply(self, exchange: Exchange, rng: random.Random) -> None:
        return None
