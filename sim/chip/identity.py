"""The W25Q128JV's identity reads, as a part of the chip model: JEDEC ID (9Fh), the
manufacturer/device ID pair (90h), the device ID after a power-down release (ABh), the
64-bit unique ID (4Bh) and the SFDP space (5Ah, :mod:`sim.chip.sfdp`).
:class:`IdentityReads` is mixed into :class:`sim.chip.w25q128.W25Q128`.
"""

from __future__ import annotations

from collections.abc import Callable

_Bytes = bytes | bytearray | memoryview


class IdentityReads:
    """Payload handlers that shift out the chip's identity; the state they read."""

    device_id: int
    sfdp: bytes
    _head: bytes

    def _const(self, source: Callable[[], bytes]) -> Callable:
        def handler(data: _Bytes, pos: int) -> bytes:
            n = len(data)
            return source()[pos : pos + n].ljust(n, b"\xff")

        return handler

    def _read_mfr_dev(self, data: _Bytes, pos: int) -> bytes:
        """90h: EFh then the device ID (17h), alternating; address bit 0 swaps them (8.2.29)."""
        n, start = len(data), (pos + self._head[3]) & 1
        return (bytes((0xEF, self.device_id)) * (n // 2 + 2))[start : start + n]

    def _read_sfdp(self, data: _Bytes, pos: int) -> bytes:
        a, space = self._head[3] + pos, self.sfdp
        return bytes(space[(a + i) & 0xFF] for i in range(len(data)))
