"""A flash driver over a plain NOR array, with NOR rules and no SPI: the explorer's fast path.

Implements the :class:`agent.storage.Flash` seam directly (size, sector size, read,
program, erase), so the agent's file system runs without the SPI model under it.
Programs AND bits and erases set 0xFF (W25Q128JV datasheet 8.2.13, 8.2.15), so a
continuation after a power cut sees exactly what the chip model left. It has no
timing and cannot be cut: the explorer uses it only for the uninterrupted run that
follows the last cut, as MCUboot's simulator checks after "an uninterrupted boot".

The array is a :class:`sim.chip.sectors.SectorArray`: erased sectors cost nothing, and
one built from a chip snapshot (:meth:`MemoryFlash.from_sectors`) shares its sectors
copy-on-write instead of copying 16 MiB.
"""

from __future__ import annotations

from agent.w25q128jv import SECTOR, SIZE
from sim.chip.sectors import SectorArray

_SHIFT = SECTOR.bit_length() - 1
_MASK = SECTOR - 1


class MemoryFlash:
    """A 16 MiB (by default) NOR array as a :class:`agent.storage.Flash`."""

    def __init__(self, data: bytes | bytearray | None = None, *, size: int = SIZE):
        if data is not None:
            size = len(data)
        if size <= 0 or size % SECTOR:
            raise ValueError(f"size must be a positive multiple of {SECTOR}, got {size}")
        self.memory = SectorArray(size) if data is None else SectorArray.from_bytes(data)
        self._size = size
        self.programs = 0
        self.erases = 0

    @classmethod
    def from_sectors(cls, sectors: tuple[bytes, ...]) -> MemoryFlash:
        """A flash holding a chip snapshot's sectors, shared copy-on-write."""
        flash = cls.__new__(cls)
        flash.memory = SectorArray(len(sectors) * SECTOR, sectors=sectors)
        flash._size = flash.memory.size
        flash.programs = flash.erases = 0
        return flash

    @property
    def size(self) -> int:
        return self._size

    @property
    def sector_size(self) -> int:
        return SECTOR

    def read(self, addr: int, n: int) -> bytes:
        if addr < 0 or n < 0 or addr + n > self._size:
            raise ValueError(f"read: {addr:#x}+{n:#x} lies outside the flash")
        off = addr & _MASK
        if off + n <= SECTOR:  # littlefs's every read (within one block): one slice, inline
            data = self.memory.sectors[addr >> _SHIFT]
            return data[off : off + n] if type(data) is bytes else bytes(data[off : off + n])
        return self.memory.read(addr, n)

    def program(self, addr: int, data: bytes) -> None:
        """AND ``data`` into the array (NOR programming only clears bits)."""
        if addr < 0 or addr + len(data) > self._size:
            raise ValueError(f"program: {addr:#x}+{len(data):#x} lies outside the flash")
        self.memory.and_into(addr, data)
        self.programs += 1

    def erase(self, addr: int, length: int) -> None:
        """Set whole sectors to 0xFF."""
        if addr < 0 or length < 0 or addr + length > self._size:
            raise ValueError(f"erase: {addr:#x}+{length:#x} lies outside the flash")
        if addr % SECTOR or length % SECTOR:
            raise ValueError(f"erase: {addr:#x}+{length:#x} is not sector aligned")
        for index in range(addr >> _SHIFT, (addr + length) >> _SHIFT):
            self.memory.erase(index)
        self.erases += 1
