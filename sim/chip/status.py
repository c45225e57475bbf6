"""The W25Q128JV's status registers and write protection, as a part of the chip model.

Reads and writes of SR1-SR3 (datasheet 7.1, 8.2.4-8.2.5): read-only bits (BUSY, WEL,
SUS), one-time bits (LB1-LB3, SRL), volatile writes after 50h; the protected range from
BP/TB/SEC/CMP (:mod:`sim.chip.protect`) or, with WPS=1, the individual block locks
(36h, 39h, 3Dh, 7Eh, 98h). :class:`StatusRegisters` is mixed into
:class:`sim.chip.w25q128.W25Q128`, whose command machine calls these handlers.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from agent.w25q128jv import BLOCK_64K, SECTOR, SECTORS, SIZE, SR1, SR2, SR3
from sim.chip.protect import protected_range, status_locked
from sim.chip.store import NvStore

_Bytes = bytes | bytearray | memoryview
# plain ints: a status read (every BUSY poll) combines them
WEL_BIT, BUSY_BIT, SUS_BIT = int(SR1.WEL), int(SR1.BUSY), int(SR2.SUS)
QE_BIT, WPS_BIT, SRL_BIT = int(SR2.QE), int(SR3.WPS), int(SR2.SRL)
LB_BITS = SR2.LB1 | SR2.LB2 | SR2.LB3
WRITABLE = (  # what a status write may change in SR1, SR2, SR3 (7.1)
    ~(SR1.BUSY | SR1.WEL) & 0xFF,
    SR2.CMP | LB_BITS | QE_BIT | SRL_BIT,
    SR3.HOLD_RST | SR3.DRV1 | SR3.DRV0 | SR3.WPS,
)


class StatusRegisters:
    """SR1-SR3, protection and block locks; the chip's state they read and write."""

    _store: NvStore
    _sr: list[int]
    _wel: bool
    _vwe: bool
    _wps: bool
    _prot: tuple[int, int]
    _locks: bytearray
    _op: Any
    _suspended: Any
    _ppos: int
    _buf: bytes
    _rng_tear: random.Random
    qe_fixed: bool
    wp: bool
    counters: Any
    _addr: Callable[[], int]
    _start: Callable[..., None]

    def _status_value(self, reg: int) -> int:
        v = self._sr[reg]
        if reg == 0:
            return v | (WEL_BIT if self._wel else 0) | (BUSY_BIT if self._op is not None else 0)
        if reg == 1:
            return v | (SUS_BIT if self._suspended is not None else 0)
        return v

    def _status_reader(self, reg: int) -> Callable:
        def handler(data: _Bytes, pos: int) -> bytes:
            return bytes((self._status_value(reg),)) * len(data)

        return handler

    def _read_lock(self, data: _Bytes, pos: int) -> bytes:
        return bytes((self._locks[self._addr() // SECTOR],)) * len(data)

    def _volatile_write_enable(self) -> None:
        self._vwe = True

    def _status_writer(self, first: int) -> Callable[[], None]:
        def latch() -> None:
            """01h/31h/11h: volatile after 50h, else non-volatile with WEL and tW (8.2.5)."""
            if self._ppos == 0:
                return
            sr = self._sr
            if status_locked(sr[0], sr[1], self.wp, not sr[1] & QE_BIT):
                return
            values = self._buf[: 2 if first == 0 else 1]
            if self._vwe:
                self._vwe = False
                for i, v in enumerate(values):
                    sr[first + i] = self._merge(first + i, sr[first + i], v, False)
                self._refresh_protection()
                self.counters.ops["write_status_volatile"] += 1
                return
            if not self._wel:
                return
            old, new = list(self._store.status), list(self._store.status)
            for i, v in enumerate(values):
                new[first + i] = self._merge(first + i, old[first + i], v, True)
            self._start("write_status", "write_status", self._apply_status, (old, new))

        return latch

    def _apply_status(self, old: list[int], new: list[int], fraction: float) -> None:
        """Complete a status write; torn: the new value with probability f, else the old."""
        chosen = new if fraction >= 1.0 or self._rng_tear.random() < fraction else old
        self._store.status = list(chosen)
        self._sr = list(chosen)
        self._refresh_protection()

    def _merge(self, reg: int, old: int, value: int, nonvolatile: bool) -> int:
        """A status write keeping read-only bits and one-time bits (LB1-3, SRL) (7.1)."""
        w = WRITABLE[reg]
        if reg == 1 and self.qe_fixed:
            w &= ~QE_BIT
        new = (old & ~w) | (value & w)
        if reg == 1:
            if nonvolatile:  # OTP: can go 0 -> 1 only
                new |= old & (LB_BITS | SRL_BIT)
            else:  # LB bits have no volatile copy to write
                new = (new & ~LB_BITS) | (old & LB_BITS)
        return new

    def _refresh_protection(self) -> None:
        sr = self._sr
        self._wps = bool(sr[2] & WPS_BIT)
        self._prot = protected_range(sr[0], sr[1])

    def _protected(self, start: int, length: int) -> bool:
        """BP/TB/SEC/CMP (7.1.3-7.1.6), or individual block locks when WPS=1 (7.1.14)."""
        if self._wps:
            return any(self._locks[start // SECTOR : (start + length - 1) // SECTOR + 1])
        lo, hi = self._prot
        return lo < start + length and start < hi

    def _block_locker(self, value: int) -> Callable[[], None]:
        def latch() -> None:
            """36h/39h: one 64 KiB block, or one 4 KiB sector in the top and bottom blocks."""
            if not self._wel:
                return
            a = self._addr()
            block = a // BLOCK_64K
            if block in (0, SIZE // BLOCK_64K - 1):
                self._locks[a // SECTOR] = value
            else:
                first = block * (BLOCK_64K // SECTOR)
                self._locks[first : first + 16] = bytes((value,)) * 16
            self._wel = False

        return latch

    def _global_locker(self, value: int) -> Callable[[], None]:
        def latch() -> None:
            """7Eh/98h: every block lock at once."""
            if self._wel:
                self._locks[:] = bytes((value,)) * SECTORS
                self._wel = False

        return latch
