"""The W25Q128JV's array commands, as a part of the chip model: read, program, erase.

Reads continue across pages and wrap at the end of the array (03h, 0Bh); Page Program
ANDs its data into one page and wraps at the page's end, keeping only the last 256 bytes
sent (02h); erases set a 4 KiB, 32 KiB or 64 KiB unit, or the whole array, to FFh
(20h, 52h, D8h, C7h/60h). Power cut in flight tears them (module doc of
:mod:`sim.chip.w25q128`). :class:`ArrayCommands` is mixed into
:class:`sim.chip.w25q128.W25Q128`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from agent.w25q128jv import ERASE_UNITS, PAGE, SECTOR, SIZE, Op
from sim.chip.sectors import ERASED_SECTOR, SectorArray
from sim.chip.state import bernoulli_mask
from sim.chip.store import NvStore

_Bytes = bytes | bytearray | memoryview
_FF = b"\xff" * 65536
MASK = SIZE - 1
_PAGE_BITS = (1 << (PAGE * 8)) - 1
ERASES = {op: (size, Op(op).name.lower()) for op, size in ERASE_UNITS.items()}


def _ff(n: int) -> bytes:
    return _FF[:n] if n <= 65536 else b"\xff" * n


class ArrayCommands:
    """03h/0Bh, 02h, 20h/52h/D8h, C7h/60h; the chip's state they read and write."""

    _store: NvStore
    _array: SectorArray
    _head: bytes
    _wel: bool
    _wps: bool
    _prot: tuple[int, int]
    _suspended: Any
    _ppos: int
    _buf: bytes
    _dropped: int
    _rng_tear: random.Random
    _rng_wear: random.Random
    wear_failure: bool
    endurance: int
    counters: Any
    _addr: Callable[[], int]
    _start: Callable[..., None]
    _protected: Callable[[int, int], bool]

    def _program(self, page: int, data: bytes, fraction: float) -> None:
        """AND ``data`` into the page; torn: each 1->0 bit cleared with probability f."""
        if fraction < 1.0:
            old = int.from_bytes(self._array.read(page, PAGE), "big")
            clears = old & ~int.from_bytes(data, "big")  # the bits the program takes to 0
            kept = bernoulli_mask(self._rng_tear, PAGE * 8, fraction) & clears
            data = (~kept & _PAGE_BITS).to_bytes(PAGE, "big")
        self._array.and_into(page, data)

    def _erase(self, start: int, length: int, fraction: float) -> None:
        """Set the unit to 0xFF; torn: each 0 bit set with probability f; wear (module doc)."""
        arr, store = self._array, self._store
        for s in range(start // SECTOR, (start + length) // SECTOR):
            lo = s * SECTOR
            if fraction < 1.0:
                old = int.from_bytes(arr.read(lo, SECTOR), "big")
                ones = bernoulli_mask(self._rng_tear, SECTOR * 8, fraction)
                arr.put(lo, (old | ones).to_bytes(SECTOR, "big"))
                continue
            arr.erase(s)
            store.wear[s] += 1
            self.counters.sector_erases[s] += 1
            if self.wear_failure and store.wear[s] > self.endurance:
                bit = self._rng_wear.randrange(SECTOR * 8)
                stuck = store.stuck.setdefault(s, {})
                stuck[bit >> 3] = stuck.get(bit >> 3, 0) | (0x80 >> (bit & 7))
            stuck_bits = store.stuck.get(s)
            if stuck_bits:
                mask = bytearray(ERASED_SECTOR)
                for off, bits in stuck_bits.items():
                    mask[off] &= ~bits & 0xFF
                arr.and_into(lo, mask)

    @staticmethod
    def _page_buffer(start: int, data: bytes) -> bytes:
        """256 bytes of 0xFF with ``data`` placed from ``start``, wrapping (8.2.13)."""
        n = len(data)
        if n > PAGE:  # only the last 256 bytes survive, where they wrapped to
            start, data, n = (start + n - PAGE) % PAGE, data[-PAGE:], PAGE
        if start == 0 and n == PAGE:
            return bytes(data)
        buf = bytearray(_FF[:PAGE])
        first = min(n, PAGE - start)
        buf[start : start + first] = data[:first]
        buf[: n - first] = data[first:]
        return bytes(buf)

    def _collect(self, data: _Bytes, pos: int) -> bytes:
        if pos == 0:
            self._buf, self._dropped = bytes(data), 0
        else:
            self._buf += bytes(data)
            if len(self._buf) > 4 * PAGE:  # keep the tail; the wrap point counts what is dropped
                self._dropped += len(self._buf) - PAGE
                self._buf = self._buf[-PAGE:]
        return _ff(len(data))

    def _read_array(self, data: _Bytes, pos: int) -> bytes:
        """03h/0Bh: continues across pages and wraps from the end to 0 (8.2.6)."""
        n = len(data)
        a = (self._addr() + pos) & MASK
        if a + n <= SIZE:
            return self._array.read(a, n)
        out = bytearray()
        while len(out) < n:
            take = min(n - len(out), SIZE - a)
            out += self._array.read(a, take)
            a = 0
        return bytes(out)

    def _payload(self) -> tuple[int, bytes] | None:
        """(offset within the page where the data starts, data), or None with no data byte."""
        if self._ppos == 0:
            return None
        return (self._head[3] + self._dropped) % PAGE, self._buf

    def _latch_program(self) -> None:
        """02h: needs WEL, an unprotected page and at least one data byte (8.2.13)."""
        if not self._wel or self._ppos == 0:
            return
        h = self._head
        page = h[1] << 16 | h[2] << 8
        if (self._wps or self._prot[1]) and self._protected(page, PAGE):
            return
        susp = self._suspended
        if susp is not None and (
            susp.kind == "page_program" or susp.unit[0] <= page < susp.unit[0] + susp.unit[1]
        ):
            return
        data, start = self._buf, (h[3] + self._dropped) & 0xFF
        if start or len(data) != PAGE:
            data = self._page_buffer(start, data)
        self.counters.bytes_programmed += min(self._ppos, PAGE)
        self._start("page_program", "page_program", self._program, (page, data), (page, PAGE))

    def _latch_erase(self) -> None:
        """20h/52h/D8h: the address is taken down to the unit boundary (8.2.15-8.2.17)."""
        size, kind = ERASES[self._head[0]]
        start = self._addr() & ~(size - 1)
        if self._wel and not self._protected(start, size):
            self._start(kind, kind, self._erase, (start, size), (start, size))

    def _latch_chip_erase(self) -> None:
        """C7h/60h: refused if any part of the array is protected (8.2.18)."""
        if self._wel and not self._protected(0, SIZE):
            self._start("chip_erase", "chip_erase", self._erase, (0, SIZE), (0, SIZE))
