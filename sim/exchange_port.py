"""pyftdi's ``SpiPort.read`` and ``write`` as shorthands for ``exchange``, for our ports.

pyftdi defines both as half-duplex transfers: ``read`` sends nothing and clocks
``readlen`` bytes in, ``write`` sends ``out`` and reads nothing (pyftdi/spi.py,
``SpiPort``). A simulated port implements ``exchange`` and inherits the other two,
so every transfer passes through the one method that models the wire.
"""

from collections.abc import Callable


class ExchangePort:
    """Base for an :class:`agent.spi.SpiPort` whose ``read``/``write`` are ``exchange``."""

    exchange: Callable[..., bytes]
    """Implemented by the subclass, with :meth:`agent.spi.SpiPort.exchange`'s signature."""

    def read(self, readlen: int = 0, start: bool = True, stop: bool = True) -> bytes:
        """Clock ``readlen`` bytes in, sending nothing."""
        return self.exchange(b"", readlen, start, stop)

    def write(self, out: bytes | bytearray, start: bool = True, stop: bool = True) -> None:
        """Send ``out``, reading nothing."""
        self.exchange(out, 0, start, stop)
