"""The W25Q128JV's three 256-byte security registers (datasheet 8.2: 44h, 42h, 48h).

Addressed at 001000h, 002000h and 003000h (A11..A8 = 0); program and erase need WEL and
are refused once the register's LBn bit (SR2) is set; a cut tears them as it tears a
page program or a sector erase. :class:`SecurityRegisters` is mixed into
:class:`sim.chip.w25q128.W25Q128`.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from agent.w25q128jv import PAGE
from sim.chip.state import bernoulli_mask
from sim.chip.store import NvStore

_Bytes = bytes | bytearray | memoryview
_FF = b"\xff" * PAGE


class SecurityRegisters:
    """44h/42h/48h; the chip's state they read and write."""

    _store: NvStore
    _sr: list[int]
    _wel: bool
    _head: bytes
    _rng_tear: random.Random
    _addr: Callable[[], int]
    _start: Callable[..., None]
    _payload: Callable[[], tuple[int, bytes] | None]
    _page_buffer: Callable[[int, bytes], bytes]

    def _security_index(self) -> int | None:
        a = self._addr()
        reg = a >> 12
        return reg - 1 if 1 <= reg <= 3 and not a & 0xF00 else None

    def _read_security(self, data: _Bytes, pos: int) -> bytes:
        idx = self._security_index()
        if idx is None:
            return b"\xff" * len(data)
        reg, a = self._store.security[idx], self._head[3] + pos
        return bytes(reg[(a + i) & 0xFF] for i in range(len(data)))

    def _latch_security_program(self) -> None:
        """42h: like Page Program, within one 256-byte register, refused once LBn=1 (8.2.34)."""
        idx, payload = self._security_index(), self._payload()
        if not self._wel or payload is None or idx is None or self._sr[1] & (0x08 << idx):
            return
        data = self._page_buffer(*payload)
        self._start("security_program", "page_program", self._security_write, (idx, data))

    def _security_write(self, idx: int, data: bytes | None, fraction: float) -> None:
        """Program (``data``) or erase (``None``) security register ``idx``, maybe torn."""
        reg = self._store.security[idx]
        old = int.from_bytes(reg, "big")
        if data is None:
            new = old | bernoulli_mask(self._rng_tear, PAGE * 8, fraction)
        else:
            want = int.from_bytes(data, "big")
            if fraction < 1.0:
                want = ~(bernoulli_mask(self._rng_tear, PAGE * 8, fraction) & old & ~want)
            new = old & want
        reg[:] = new.to_bytes(PAGE, "big")

    def _latch_security_erase(self) -> None:
        """44h: erase one security register, refused once its LBn=1 (8.2.33)."""
        idx = self._security_index()
        if self._wel and idx is not None and not self._sr[1] & (0x08 << idx):
            self._start("security_erase", "sector_erase", self._security_write, (idx, None))
