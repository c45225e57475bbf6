"""``ignore_range``: answer 200 with the whole blob whatever range was asked.

What a proxy or server that does not support ranges does (RFC 9110 §14.2 lets
a server ignore Range); a resuming downloader must notice the 200.
"""

import random
from dataclasses import dataclass
from typing import ClassVar

from sim.cloud.faults.exchange import Exchange


@dataclass(frozen=True)
class IgnoreRange:
    """Serve the whole blob with 200, no Content-Range."""

    name: ClassVar[str] = "ignore_range"

    def apply(self, exchange: Exchange, rng: random.Random) -> None:
        exchange.ignore_range = True
