"""pyftdi's ``SpiPort.read`` and ``write`` as shorthands for ``exchange``, for our ports.

pyftdi defines both as half-duplex transfers: ``read`` sends nothing and clocks
``readlen`` bytes in, ``write`` sends ``out`` and reads nothing (pyftdi/spi.py,
``SpiPort``). A simulated port implements ``exchange`` and inherits the other two,
so every transfer passes through the one method that models the wire.
"""

from abc import ABC, abstractmethod


class ExchangePort(ABC):
    """Base for an :class:`agent.spi.SpiPort` whose ``read``/``write`` are ``exchange``."""

    @abstractmethod
    def exchange(
        self,
        out: bytes | bytearray = b"",
        readlen: int = 0,
        start: bool = True,
        stop: bool = True,
        duplex: bool = False,
        droptail: int = 0,
    ) -> bytes:
        """Send ``out`` then read ``readlen`` bytes (see :class:`agent.spi.SpiPort`)."""

    def read(self, readlen: int = 0, start: bool = True, stop: bool = True) -> bytes:
        """Clock ``readlen`` bytes in, sending nothing."""
        return self.exchange(b"", readlen, start, stop)

    def write(self, out: bytes | bytearray, start: bool = True, stop: bool = True) -> None:
        """Send ``out``, reading nothing."""
        self.exchange(out, 0, start, stop)
