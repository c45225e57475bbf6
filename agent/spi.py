"""The SPI seam: the subset of pyftdi's ``SpiPort`` the flash driver uses.

pyftdi's real port (``SpiController().get_port(cs, freq, mode)``) satisfies it on
the bench; :class:`sim.ports.model.SimSpiPort` satisfies it in simulation.
"""

from typing import Protocol, runtime_checkable


@runtime_checkable
class SpiPort(Protocol):
    """One /CS line of an SPI master, as pyftdi's ``SpiPort`` presents it."""

    def exchange(
        self,
        out: bytes | bytearray = b"",
        readlen: int = 0,
        start: bool = True,
        stop: bool = True,
        duplex: bool = False,
        droptail: int = 0,
    ) -> bytes:
        """Send ``out`` then read ``readlen`` bytes (half duplex), or clock both at once.

        ``start`` asserts /CS before the transfer, ``stop`` releases it after.
        With ``duplex=True`` the bytes read while ``out`` is sent are returned.
        """
        ...

    def read(self, readlen: int = 0, start: bool = True, stop: bool = True) -> bytes: ...

    def write(self, out: bytes | bytearray, start: bool = True, stop: bool = True) -> None: ...

    @property
    def frequency(self) -> float:
        """The SCK frequency in Hz."""
        ...

    def set_frequency(self, frequency: float) -> None: ...
