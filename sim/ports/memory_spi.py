"""An SPI port onto a :class:`sim.ports.memory.MemoryFlash`'s own bytes, built on first use.

The explorer's fast continuation hands an agent a memory flash with NOR rules instead of
the chip model. This project's agent takes it through the storage seam; an agent that
speaks SPI itself (``agent.protocol.Board.spi``) reaches the very same bytes through a
:class:`sim.ports.ram.RamSpiPort` sharing the array. The port is only built when such an
agent sends its first byte, so the fast path costs nothing for agents that never do.
"""

from __future__ import annotations

from sim.ports.memory import MemoryFlash
from sim.ports.ram import RamSpiPort
from sim.ports.wrapper import ExchangePort

_SPI_HZ = 8e6  # the reference design's SCK; a memory port has no timing anyway


class MemorySpiPort(ExchangePort):
    """pyftdi's ``SpiPort`` interface over ``flash.memory`` (no timing, never cut)."""

    def __init__(self, flash: MemoryFlash) -> None:
        self._flash = flash
        self._port: RamSpiPort | None = None
        self._frequency = _SPI_HZ

    def _ram(self) -> RamSpiPort:
        if self._port is None:
            port = RamSpiPort(self._flash.size, frequency=self._frequency)
            port.memory = self._flash.memory  # one array: what either side writes, both see
            self._port = port
        return self._port

    def exchange(
        self,
        out: bytes | bytearray = b"",
        readlen: int = 0,
        start: bool = True,
        stop: bool = True,
        duplex: bool = False,
        droptail: int = 0,
    ) -> bytes:
        return self._ram().exchange(out, readlen, start, stop, duplex, droptail)

    @property
    def frequency(self) -> float:
        return self._frequency

    def set_frequency(self, frequency: float) -> None:
        if self._port is not None:
            self._port.set_frequency(frequency)
        self._frequency = float(frequency)
