"""pyftdi's ``SpiPort.read`` and ``write`` as shorthands for ``exchange``, for our ports.

pyftdi defines both as half-duplex transfers: ``read`` sends nothing and clocks
``readlen`` bytes in, ``write`` sends ``out`` and reads nothing (pyftdi/spi.py,
``SpiPort``). A simulated port implements ``exchange`` and inherits the other two,
so every transfer passes through the one method that models the wire.
"""

from collections.abc import Callable

from agent.spi import SpiPort


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


class PortWrapper(ExchangePort):
    """A port in front of another (a cut trigger, a power switch): every transfer goes
    through this wrapper's ``exchange``, and the SCK frequency is the inner port's."""

    def __init__(self, port: SpiPort) -> None:
        self._inner = port

    def exchange(
        self,
        out: bytes | bytearray = b"",
        readlen: int = 0,
        start: bool = True,
        stop: bool = True,
        duplex: bool = False,
        droptail: int = 0,
    ) -> bytes:
        return self._inner.exchange(out, readlen, start, stop, duplex, droptail)

    @property
    def frequency(self) -> float:
        return self._inner.frequency

    def set_frequency(self, frequency: float) -> None:
        self._inner.set_frequency(frequency)
