"""A read-only look at a NOR array through the :class:`agent.storage.Flash` seam.

The harness's own checks (the re-join shortcut's file hashes, the progress record after
every cut) mount littlefs on what a chip or a memory flash holds without touching it:
no SPI transaction (the device's time and the chip's counters stay as they are) and no
write (a program or erase raises :class:`ReadOnlyFlash`, which littlefs sees as an I/O
error). :class:`ArrayView` reads either a live :class:`sim.chip.sectors.SectorArray`
(the chip's ``array``, a memory flash's ``memory``) or a frozen tuple of sectors (a
:class:`sim.chip.state.ChipSnapshot`'s ``sectors``).
"""

from __future__ import annotations

from agent.w25q128jv import SECTOR
from sim.chip.sectors import SectorArray, read_sectors


class ReadOnlyFlash(Exception):
    """A program or erase reached a read-only view."""


class ArrayView:
    """``array`` (live) or ``sectors`` (frozen) as a read-only flash."""

    sector_size = SECTOR

    def __init__(
        self,
        array: SectorArray | None = None,
        *,
        sectors: tuple[bytes, ...] | None = None,
    ) -> None:
        if (array is None) == (sectors is None):
            raise ValueError("ArrayView takes a SectorArray or a tuple of sectors, one of them")
        self._array = array
        self._sectors = sectors
        self.size = array.size if array is not None else len(sectors or ()) * SECTOR

    def read(self, addr: int, n: int) -> bytes:
        if addr < 0 or n < 0 or addr + n > self.size:
            raise ValueError(f"read: {addr:#x}+{n:#x} lies outside the flash")
        if self._sectors is not None:
            return read_sectors(self._sectors, addr, n)
        assert self._array is not None
        return self._array.read(addr, n)

    def program(self, addr: int, data: bytes) -> None:
        raise ReadOnlyFlash(f"program of {len(data)} bytes at {addr:#x} on a read-only view")

    def erase(self, addr: int, length: int) -> None:
        raise ReadOnlyFlash(f"erase of {length} bytes at {addr:#x} on a read-only view")
