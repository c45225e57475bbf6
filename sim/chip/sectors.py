"""A NOR array held as 4 KiB sectors: an erased sector costs nothing, snapshots share sectors.

Each of the array's sectors is one of three things: :data:`ERASED_SECTOR` (one shared
``bytes`` of 0xFF: an erased sector holds no memory of its own), a frozen ``bytes``
(possibly shared with snapshots) or a private ``bytearray`` (changed since the last
:meth:`SectorArray.freeze`). Writing a shared sector copies it first (copy-on-write), so
a snapshot is a tuple of references plus one copy of each sector changed since the
previous snapshot, and a device whose file system holds a 1 MiB image costs about
1 MiB. An optional ``mirror`` (the chip's memory-mapped image file) receives every
write, so another process mapping the file sees the data at once.

The class also reads like the ``bytearray`` it replaces (``len``, indexing, slices,
slice assignment, ``bytes()``, ``find``): the chip model's ``array`` test backdoor and
:class:`sim.ports.memory.MemoryFlash`'s ``memory``.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterable, Iterator, Sequence
from typing import overload

from agent.w25q128jv import SECTOR

ERASED_SECTOR = b"\xff" * SECTOR
_SHIFT = SECTOR.bit_length() - 1
_MASK = SECTOR - 1
_Bytes = bytes | bytearray | memoryview | mmap.mmap


def read_sectors(sectors: Sequence[bytes | bytearray], addr: int, n: int) -> bytes:
    """``n`` bytes from ``addr`` of a list of sectors (a live array's or a snapshot's);
    the caller checks the range."""
    off = addr & _MASK
    if off + n <= SECTOR:  # littlefs never reads across a block (= sector) boundary
        data = sectors[addr >> _SHIFT]
        return data[off : off + n] if type(data) is bytes else bytes(data[off : off + n])
    out, end = bytearray(), addr + n
    while addr < end:
        off = addr & _MASK
        take = min(SECTOR - off, end - addr)
        out += sectors[addr >> _SHIFT][off : off + take]
        addr += take
    return bytes(out)


class SectorArray:
    """``size`` bytes of NOR array in copy-on-write sectors (see the module doc)."""

    __slots__ = ("_mirror", "_private", "sectors", "size")

    def __init__(
        self,
        size: int,
        *,
        sectors: Iterable[bytes] | None = None,
        mirror: mmap.mmap | None = None,
    ) -> None:
        if size <= 0 or size % SECTOR:
            raise ValueError(f"size must be a positive multiple of {SECTOR}, got {size}")
        self.size = size
        count = size // SECTOR
        self.sectors: list[bytes | bytearray] = (
            [ERASED_SECTOR] * count if sectors is None else list(sectors)
        )
        if len(self.sectors) != count:
            raise ValueError(f"{len(self.sectors)} sectors given for a {size}-byte array")
        self._private: set[int] = set()  # indices holding a bytearray
        self._mirror = mirror

    @classmethod
    def from_bytes(cls, data: _Bytes, *, mirror: mmap.mmap | None = None) -> SectorArray:
        """The array holding ``data`` (erased sectors of it cost nothing)."""
        view = memoryview(data)
        sectors = []
        for lo in range(0, len(view), SECTOR):
            chunk = bytes(view[lo : lo + SECTOR])
            sectors.append(ERASED_SECTOR if chunk == ERASED_SECTOR else chunk)
        return cls(len(view), sectors=sectors, mirror=mirror)

    # -- the fast paths the chip model and the memory flash use ---------------------------

    def read(self, addr: int, n: int) -> bytes:
        """``n`` bytes from ``addr`` (within the array; the caller checks the range)."""
        return read_sectors(self.sectors, addr, n)

    def writable(self, index: int) -> bytearray:
        """Sector ``index`` as a private ``bytearray``, copied first if it is shared."""
        data = self.sectors[index]
        if type(data) is bytearray:
            return data
        own = bytearray(data)
        self.sectors[index] = own
        self._private.add(index)
        return own

    def and_into(self, addr: int, data: _Bytes) -> None:
        """AND ``data`` into the array at ``addr`` (NOR programming only clears bits)."""
        n = len(data)
        off = addr & _MASK
        if off + n <= SECTOR:
            sec = self.writable(addr >> _SHIFT)
            old = int.from_bytes(sec[off : off + n], "big")
            new = (old & int.from_bytes(data, "big")).to_bytes(n, "big")
            sec[off : off + n] = new
            if self._mirror is not None:
                self._mirror[addr : addr + n] = new
            return
        pos = 0
        while pos < n:
            take = min(SECTOR - ((addr + pos) & _MASK), n - pos)
            self.and_into(addr + pos, data[pos : pos + take])
            pos += take

    def put(self, addr: int, data: _Bytes) -> None:
        """Overwrite ``len(data)`` bytes at ``addr`` (any bits, either way)."""
        n, pos = len(data), 0
        while pos < n:
            at = addr + pos
            index, off = at >> _SHIFT, at & _MASK
            take = min(SECTOR - off, n - pos)
            chunk = data[pos : pos + take]
            if take == SECTOR:
                whole = bytes(chunk)
                self.sectors[index] = ERASED_SECTOR if whole == ERASED_SECTOR else whole
                self._private.discard(index)
            else:
                self.writable(index)[off : off + take] = chunk
            pos += take
        if self._mirror is not None and n:
            self._mirror[addr : addr + n] = bytes(data)

    def erase(self, index: int) -> None:
        """Set sector ``index`` to 0xFF: it then holds no memory of its own."""
        self.sectors[index] = ERASED_SECTOR
        self._private.discard(index)
        if self._mirror is not None:
            self._mirror[index << _SHIFT : (index + 1) << _SHIFT] = ERASED_SECTOR

    # -- snapshots --------------------------------------------------------------------------

    def freeze(self) -> tuple[bytes, ...]:
        """Every sector as immutable ``bytes``, shared with the array from now on."""
        sectors = self.sectors
        for index in self._private:
            data = bytes(sectors[index])
            sectors[index] = ERASED_SECTOR if data == ERASED_SECTOR else data
        self._private.clear()
        return tuple(sectors)  # type: ignore[arg-type]

    def load(self, sectors: tuple[bytes, ...]) -> None:
        """Hold ``sectors`` (a :meth:`freeze` result); the mirror gets the ones that differ."""
        if len(sectors) != len(self.sectors):
            raise ValueError(f"{len(sectors)} sectors given for {len(self.sectors)}")
        if self._mirror is not None:
            for index, (old, new) in enumerate(zip(self.sectors, sectors, strict=True)):
                if old is not new and old != new:
                    self._mirror[index << _SHIFT : (index + 1) << _SHIFT] = new
        self.sectors[:] = sectors
        self._private.clear()

    def detach(self) -> None:
        """Stop writing to the mirror (its file is being closed); the data stays here."""
        self._mirror = None

    def copy(self) -> SectorArray:
        """An independent array sharing every sector (copy-on-write), without the mirror."""
        return SectorArray(self.size, sectors=self.freeze())

    def resident_bytes(self) -> int:
        """Bytes of sector data this array holds (erased sectors count nothing)."""
        return SECTOR * sum(1 for data in self.sectors if data is not ERASED_SECTOR)

    # -- the bytearray look-alike (test backdoors) ---------------------------------------------

    def __len__(self) -> int:
        return self.size

    def __bytes__(self) -> bytes:
        return b"".join(self.sectors)

    def __iter__(self) -> Iterator[int]:
        for data in self.sectors:
            yield from data

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SectorArray):
            return self.sectors == other.sectors
        if isinstance(other, bytes | bytearray | memoryview):
            return len(other) == self.size and bytes(self) == bytes(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, like bytearray

    def _span(self, key: slice) -> tuple[int, int]:
        start, stop, step = key.indices(self.size)
        if step != 1:
            raise ValueError("SectorArray slices take no step")
        return start, max(start, stop)

    @overload
    def __getitem__(self, key: int) -> int: ...

    @overload
    def __getitem__(self, key: slice) -> bytes: ...

    def __getitem__(self, key: int | slice) -> int | bytes:
        if isinstance(key, slice):
            start, stop = self._span(key)
            return self.read(start, stop - start) if stop > start else b""
        index = key + self.size if key < 0 else key
        if not 0 <= index < self.size:
            raise IndexError("SectorArray index out of range")
        return self.sectors[index >> _SHIFT][index & _MASK]

    def __setitem__(self, key: int | slice, value: int | _Bytes) -> None:
        if isinstance(key, slice):
            start, stop = self._span(key)
            data = bytes(value) if not isinstance(value, int) else None
            if data is None or len(data) != stop - start:
                raise ValueError("SectorArray slice assignment cannot change the size")
            self.put(start, data)
            return
        index = key + self.size if key < 0 else key
        if not 0 <= index < self.size:
            raise IndexError("SectorArray index out of range")
        if not isinstance(value, int) or not 0 <= value <= 0xFF:
            raise ValueError("byte must be in range(0, 256)")
        self.put(index, bytes((value,)))

    def find(self, needle: _Bytes, start: int = 0) -> int:
        """The lowest index >= ``start`` where ``needle`` begins, or -1 (``bytes.find``)."""
        needle = bytes(needle)
        if not needle or needle.count(0xFF) == len(needle):
            return bytes(self).find(needle, start)  # erased sectors can hold this one
        n, sectors = len(needle), self.sectors
        first = max(0, start) >> _SHIFT
        for index in range(first, len(sectors)):
            following = sectors[index + 1] if index + 1 < len(sectors) else ERASED_SECTOR
            if sectors[index] is ERASED_SECTOR and following is ERASED_SECTOR:
                continue  # a needle with a byte other than 0xFF cannot start here
            lo = index << _SHIFT
            window = self.read(lo, min(SECTOR + n - 1, self.size - lo))
            at = window.find(needle, max(0, start - lo))
            if at >= 0 and at < SECTOR:
                return lo + at
        return -1
