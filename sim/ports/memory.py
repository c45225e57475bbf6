"""A flash driver over a plain bytearray, with NOR rules and no SPI: the explorer's fast path.

Implements the :class:`agent.storage.Flash` seam directly (size, sector size, read,
program, erase), so the agent's file system runs without the SPI model under it.
Programs AND bits and erases set 0xFF (W25Q128JV datasheet 8.2.13, 8.2.15), so a
continuation after a power cut sees exactly what the chip model left. It has no
timing and cannot be cut: the explorer uses it only for the uninterrupted run that
follows the last cut, as MCUboot's simulator checks after "an uninterrupted boot".
"""

from __future__ import annotations

from agent.w25q128jv import SECTOR, SIZE


class MemoryFlash:
    """A 16 MiB (by default) NOR array as a :class:`agent.storage.Flash`."""

    def __init__(self, data: bytes | bytearray | None = None, *, size: int = SIZE):
        if data is not None:
            size = len(data)
        if size <= 0 or size % SECTOR:
            raise ValueError(f"size must be a positive multiple of {SECTOR}, got {size}")
        self.memory = bytearray(data) if data is not None else bytearray(b"\xff" * size)
        self.programs = 0
        self.erases = 0

    @property
    def size(self) -> int:
        return len(self.memory)

    @property
    def sector_size(self) -> int:
        return SECTOR

    def _check(self, what: str, addr: int, n: int) -> None:
        if addr < 0 or n < 0 or addr + n > len(self.memory):
            raise ValueError(f"{what}: {addr:#x}+{n:#x} lies outside the flash")

    def read(self, addr: int, n: int) -> bytes:
        self._check("read", addr, n)
        return bytes(self.memory[addr : addr + n])

    def program(self, addr: int, data: bytes) -> None:
        """AND ``data`` into the array (NOR programming only clears bits)."""
        self._check("program", addr, len(data))
        old = int.from_bytes(self.memory[addr : addr + len(data)], "big")
        new = old & int.from_bytes(data, "big")
        self.memory[addr : addr + len(data)] = new.to_bytes(len(data), "big")
        self.programs += 1

    def erase(self, addr: int, length: int) -> None:
        """Set whole sectors to 0xFF."""
        self._check("erase", addr, length)
        if addr % SECTOR or length % SECTOR:
            raise ValueError(f"erase: {addr:#x}+{length:#x} is not sector aligned")
        self.memory[addr : addr + length] = b"\xff" * length
        self.erases += 1
