"""The clean run's chip states, one before every state-changing operation, in little memory.

A sweep restores the chip as it was just before operation *i*, for every *i* of the clean
run. A :class:`~sim.chip.state.ChipSnapshot` per operation would cost a 4,096-entry tuple
of sector references and a 16 KiB wear table (about 48 KiB) plus a private 4 KiB copy of
every sector each operation changed: 1.1 GiB for the 18,531 operations of a 4 MiB OTA.
:class:`SnapshotLog` keeps a whole snapshot every :data:`KEYFRAME` operations and, for
each operation in between, only what changed since the one before: the 256-byte pages
that differ (a page program changes one), sectors that became erased, wear counters
and registers. :meth:`SnapshotLog.snapshot` rebuilds any of them from the keyframe
before it, equal to the snapshot the chip gave then.

Changes are found by comparing against the previous snapshot, not predicted from the
command: a frozen sector is an immutable ``bytes`` that the chip replaces whenever it
writes to it (:mod:`sim.chip.sectors`), so a sector whose object is the same is
unchanged, and every other one is compared page by page.
"""

from __future__ import annotations

import operator
from array import array
from dataclasses import dataclass
from itertools import compress

from agent.w25q128jv import PAGE, SECTOR
from sim.chip.sectors import ERASED_SECTOR
from sim.chip.state import ChipSnapshot

KEYFRAME = 128  # operations per whole snapshot: memory against the cost of a rebuild
_PAGES = SECTOR // PAGE
_WHOLE = _PAGES // 2  # more changed pages than this: keep the whole sector


_Registers = tuple[
    tuple[int, int, int],
    tuple[bytes, bytes, bytes],
    tuple[tuple[int, tuple[tuple[int, int], ...]], ...],
    bytes,
]


def _registers(snap: ChipSnapshot) -> _Registers:
    return (snap.status_nv, snap.security, snap.stuck, snap.unique_id)


@dataclass(frozen=True)
class _Delta:
    """What one snapshot changed against the one before it."""

    pages: tuple[tuple[int, int, bytes], ...]  # (sector, byte offset, new bytes)
    wear: tuple[tuple[int, int], ...]  # (sector, new erase count)
    registers: _Registers | None  # when a status or security register or a stuck bit changed


class SnapshotLog:
    """Snapshots appended in order, each rebuilt on demand (see the module doc)."""

    def __init__(self, keyframe: int = KEYFRAME) -> None:
        if keyframe < 1:
            raise ValueError(f"keyframe must be at least 1, got {keyframe}")
        self._every = keyframe
        self._keys: list[ChipSnapshot] = []
        self._deltas: list[_Delta | None] = []  # None at a keyframe
        self._last: ChipSnapshot | None = None

    def __len__(self) -> int:
        return len(self._deltas)

    def append(self, snap: ChipSnapshot) -> None:
        """Log ``snap``, the state after every snapshot appended before it."""
        prev = self._last
        if prev is None or len(self._deltas) % self._every == 0:
            self._keys.append(snap)
            self._deltas.append(None)
        else:
            self._deltas.append(_delta(prev, snap))
        self._last = snap

    def snapshot(self, index: int) -> ChipSnapshot:
        """The snapshot appended ``index``-th (0-based), rebuilt from its keyframe."""
        if not 0 <= index < len(self._deltas):
            raise IndexError(f"snapshot {index} of {len(self._deltas)}")
        key = self._keys[index // self._every]
        first = index - index % self._every + 1
        deltas = [d for d in self._deltas[first : index + 1] if d is not None]
        if not deltas:
            return key
        sectors = list(key.sectors)
        patched: dict[int, bytearray] = {}
        wear: array | None = None
        registers = _registers(key)
        for delta in deltas:
            for sector, offset, data in delta.pages:
                if len(data) == SECTOR:
                    sectors[sector] = data
                    patched.pop(sector, None)
                    continue
                own = patched.get(sector)
                if own is None:
                    own = patched[sector] = bytearray(sectors[sector])
                own[offset : offset + len(data)] = data
            if delta.wear:
                if wear is None:
                    wear = array("I", key.wear)
                for sector, count in delta.wear:
                    wear[sector] = count
            if delta.registers is not None:
                registers = delta.registers
        for sector, own in patched.items():
            data = bytes(own)
            sectors[sector] = ERASED_SECTOR if data == ERASED_SECTOR else data
        status_nv, security, stuck, unique_id = registers
        return ChipSnapshot(
            sectors=tuple(sectors),
            status_nv=status_nv,
            security=security,
            wear=key.wear if wear is None else wear,
            stuck=stuck,
            unique_id=unique_id,
        )


def _delta(prev: ChipSnapshot, snap: ChipSnapshot) -> _Delta:
    changed = compress(range(len(snap.sectors)), map(operator.is_not, prev.sectors, snap.sectors))
    pages: list[tuple[int, int, bytes]] = []
    for sector in changed:
        old, new = prev.sectors[sector], snap.sectors[sector]
        if old == new:
            continue  # the same bytes in a new object
        diff = [
            offset
            for offset in range(0, SECTOR, PAGE)
            if old[offset : offset + PAGE] != new[offset : offset + PAGE]
        ]
        if new is ERASED_SECTOR or len(diff) > _WHOLE:
            pages.append((sector, 0, new))
        else:
            pages.extend((sector, offset, new[offset : offset + PAGE]) for offset in diff)
    wear: tuple[tuple[int, int], ...] = ()
    if snap.wear != prev.wear:
        moved = compress(range(len(snap.wear)), map(operator.ne, prev.wear, snap.wear))
        wear = tuple((sector, snap.wear[sector]) for sector in moved)
    registers = _registers(snap)
    return _Delta(tuple(pages), wear, None if registers == _registers(prev) else registers)
