"""``corrupt``: flip bits of the bytes served from given blob offsets.

The transfer itself is intact (status, lengths and ETag are right), so only an
end-to-end check such as the image's SHA-256 or ``Content-MD5`` can catch it.
"""

import random
from dataclasses import dataclass
from typing import ClassVar

from sim.cloud.faults.exchange import Exchange
from sim.cloud.faults.fault import check_int


@dataclass(frozen=True)
class Corrupt:
    """XOR the byte at each blob offset in ``offsets`` with ``mask`` when it is served."""

    name: ClassVar[str] = "corrupt"
    offsets: tuple[int, ...]
    mask: int = 0xFF

    def __post_init__(self) -> None:
        if isinstance(self.offsets, str) or not hasattr(self.offsets, "__iter__"):
            raise ValueError(f"{self.name}.offsets must be a list of blob offsets")
        object.__setattr__(self, "offsets", tuple(self.offsets))
        if not self.offsets:
            raise ValueError(f"{self.name}.offsets must name at least one blob offset")
        for offset in self.offsets:
            check_int(self.name, "offsets", offset)
        check_int(self.name, "mask", self.mask)
        if not 1 <= self.mask <= 0xFF:
            raise ValueError(f"{self.name}.mask must be in 1..255, got {self.mask}")

    def apply(self, exchange: Exchange, rng: random.Random) -> None:
        for offset in self.offsets:
            exchange.corrupt[offset] = exchange.corrupt.get(offset, 0) ^ self.mask
